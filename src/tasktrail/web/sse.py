"""Server-Sent Events: a task's snapshot at once, then each change, closed when it is done.

Under ASGI a stream costs an asyncio task and a mailbox: changes reach it from the
process's one listener (:mod:`tasktrail.notify`), not from a query of its own; served
through :class:`tasktrail.asgi.LiveStreams` it holds no thread either. Each event's id
is the record's version, so a reconnecting ``EventSource`` sends ``Last-Event-ID`` and
gets only what it has not seen. A stream is admitted under the limits
(:mod:`.limits`: 429 / 503 with ``Retry-After``) once the access rule let it see the
task. Under WSGI a stream would hold a worker thread for its whole life, so the view
declines (503) and the widget polls the JSON status instead.

:func:`event` (one record as an event) is what any other transport of the same
payloads reuses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from .. import access, notify
from ..exceptions import TaskNotFound
from ..records import TaskRecord
from . import follow, responses, streams
from .streams import HEADERS, KEEPALIVE, RETRY_MS, in_thread, refused
from .views import viewer

__all__ = ["HEADERS", "KEEPALIVE", "RETRY_MS", "event", "events", "in_thread", "refused"]


def _lookup(
    request: HttpRequest, task_id: str, token: str | None
) -> tuple[TaskRecord, access.Level, str]:
    record, allowed = access.lookup(task_id, viewer(request), token)
    return record, allowed, streams.viewer_key(request)


def event(record: TaskRecord, allowed: access.Level) -> bytes:
    """``record`` as ``allowed`` may see it (:func:`tasktrail.access.snapshot`), as one
    event whose id is its version."""
    data = json.dumps(access.snapshot(record, allowed), cls=responses.Encoder)
    return f"id: {notify.version(record)}\ndata: {data}\n\n".encode()


_event = event


@require_GET
async def events(request: HttpRequest, task_id: str) -> HttpResponseBase:
    if not isinstance(request, ASGIRequest):
        return refused()
    token = request.GET.get("token")
    try:
        record, allowed, key = await in_thread(_lookup, request, task_id, token)
    except TaskNotFound:
        return responses.not_found()
    seen = request.headers.get("Last-Event-ID")
    if record.ready and seen == str(notify.version(record)):
        # Tells EventSource not to reconnect: it has the final state.
        return HttpResponse(status=204, headers=responses.NO_STORE)
    return streams.admitted(request, key, lambda: _stream(record.id, allowed, seen))


async def _stream(task_id: str, allowed: access.Level, seen: str | None) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    async for record in follow.task(task_id, seen):
        yield KEEPALIVE if record is None else event(record, allowed)
