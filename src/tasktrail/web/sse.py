"""Server-Sent Events: a task's snapshot at once, then each change, closed when it is done.

Under ASGI a stream costs an asyncio task and a mailbox: changes reach it from the
process's one listener (:mod:`tasktrail.notify`), not from a query of its own. Each
event's id is the record's version, so a reconnecting ``EventSource`` sends
``Last-Event-ID`` and gets only what it has not seen. Under WSGI a stream would hold a
worker thread for its whole life, so the view declines (503) and the widget polls the
JSON status instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from .. import access, conf, notify, store
from ..exceptions import TaskNotFound
from ..records import TaskRecord
from . import responses
from .views import viewer

#: How long a browser waits before reconnecting a dropped stream.
RETRY_MS = 1000
KEEPALIVE = b": keep-alive\n\n"
HEADERS = {
    **responses.NO_STORE,
    # nginx buffers responses unless told otherwise; a buffered stream is no stream.
    "X-Accel-Buffering": "no",
}


async def in_thread[T](function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a thread of the loop's shared pool, not one per request:
    the session and user are read there, and its connections follow CONN_MAX_AGE
    like a request's."""

    def fresh() -> T:
        close_old_connections()
        try:
            return function(*args)
        finally:
            close_old_connections()

    return await sync_to_async(fresh, thread_sensitive=False)()


def refused() -> HttpResponse:
    """The answer under WSGI, where a stream would hold a worker thread: poll instead."""
    return responses.json({"error": "live updates need an ASGI server; poll the status"}, 503)


def _lookup(request: HttpRequest, task_id: str, token: str | None) -> tuple[TaskRecord, Any]:
    return access.lookup(task_id, viewer(request), token)


def _event(record: TaskRecord, allowed: access.Level) -> bytes:
    data = json.dumps(access.snapshot(record, allowed), cls=responses.Encoder)
    return f"id: {notify.version(record)}\ndata: {data}\n\n".encode()


@require_GET
async def events(request: HttpRequest, task_id: str) -> HttpResponseBase:
    if not isinstance(request, ASGIRequest):
        return refused()
    token = request.GET.get("token")
    try:
        record, allowed = await in_thread(_lookup, request, task_id, token)
    except TaskNotFound:
        return responses.not_found()
    seen = request.headers.get("Last-Event-ID")
    if record.ready and seen == str(notify.version(record)):
        # Tells EventSource not to reconnect: it has the final state.
        return HttpResponse(status=204, headers=responses.NO_STORE)
    stream = _stream(record.id, allowed, seen)
    return StreamingHttpResponse(stream, content_type="text/event-stream", headers=HEADERS)


async def _stream(task_id: str, allowed: access.Level, seen: str | None) -> AsyncIterator[bytes]:
    keepalive = conf.get().KEEPALIVE_INTERVAL.total_seconds()
    hub = notify.hub()
    yield f"retry: {RETRY_MS}\n\n".encode()
    async with hub.watch(task_id) as mailbox:
        # Read again now that changes are watched: one may have landed since the lookup.
        current: TaskRecord | None = (await hub.read(store.get_many, [task_id])).get(task_id)
        while True:
            if current is not None and str(notify.version(current)) != seen:
                seen = str(notify.version(current))
                yield _event(current, allowed)
                if current.ready:
                    return
            current = await mailbox.get(keepalive)
            if current is None:
                yield KEEPALIVE
