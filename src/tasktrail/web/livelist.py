"""Live lists: one Server-Sent Events stream per page, carrying what is new to its list.

The task list's stream sends the tasks matching the page's search that changed after
the newest row the page shows (new tasks, and tasks that moved to the top); the
overview's sends the running tasks among them and the counters by state. Each event
is ``{"tasks": [rows], "counts": [...]}`` with the newest key as its id, so a
reconnecting ``EventSource`` (``Last-Event-ID``) resumes where it stopped.

A stream does not query per change: it waits on the process's hub (:mod:`tasktrail.
notify`), which rings it when any task was written (LISTEN/NOTIFY or Redis pub/sub),
then reads once what is newer than its key (a backward range scan of the
``updated_at`` index over what changed since), at most every :data:`MIN_GAP`
seconds, and at least every poll interval (the polling notifier reports only tasks
watched by id). The same access rule (:func:`tasktrail.access.operator`: the
dashboard's) and the same search form (:mod:`.search`) as the page decide what it
sends. A stream is admitted under the limits (:mod:`.limits`) as a task's is; a refused
page polls. Under WSGI a stream would hold a worker thread, so ``?once=1`` answers one
batch as JSON, which the page polls instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import access, conf, notify
from ..models import RUNNING
from ..records import TaskRecord
from ..store import overview, queries
from . import present, responses, search, streams
from .streams import KEEPALIVE, RETRY_MS
from .views import viewer

#: Most rows one event carries (the page caps its table too, see dashboard.js).
LIMIT = 100
#: Fewest seconds between two reads of one stream: a burst of writes costs one query.
MIN_GAP = 0.5
#: Fewest seconds between two counter updates (each reads the newest 50,000 rows).
COUNTS_GAP = 5.0
#: The lists a stream can follow.
LISTS = ("tasks", "running")


@dataclasses.dataclass(frozen=True, slots=True)
class Follow:
    """What one stream follows, decided once from the request."""

    level: access.Level
    where: queries.TaskFilter
    kind: str
    counts: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    rows: list[dict[str, Any]]
    cursor: queries.Cursor
    counts: list[dict[str, Any]] | None


def _follow(request: HttpRequest) -> tuple[Follow, str] | JsonResponse:
    """What the stream follows and whom it counts against (:func:`.streams.viewer_key`),
    or the answer that it may not (404) or asks for what is not (400)."""
    close_old_connections()
    try:
        level = access.operator(viewer(request))
        if level is access.Level.NONE:
            return responses.not_found()
        form = search.SearchForm(request.GET, level)
        kind = request.GET.get("list", "tasks")
        if not form.is_valid() or kind not in LISTS:
            errors = {k: [str(e) for e in v] for k, v in form.errors.items()}
            if kind not in LISTS:
                errors["list"] = [f"one of {', '.join(LISTS)}"]
            return responses.json({"error": "bad search", "fields": errors}, 400)
        # Not resolved here: a name first seen after the stream opened must match too,
        # so each read looks the names up again (a query of the small names table).
        follow = Follow(level, form.task_filter(), kind, request.GET.get("counts") == "1")
        return follow, streams.viewer_key(request)
    finally:
        close_old_connections()


def _start(request: HttpRequest) -> queries.Cursor | None:
    """Where the stream starts: the last event seen, else the page's newest row (or,
    for an empty page, the moment it was drawn: ``from=<moment>,``)."""
    text = request.headers.get("Last-Event-ID") or request.GET.get("from", "")
    if text.endswith(","):
        try:
            moment = datetime.fromisoformat(text[:-1])
        except ValueError:
            return None
        return (moment, "") if queries.storable(moment) else None
    try:
        return queries.parse_cursor(text) if text else None
    except ValueError:
        return None


def row(record: TaskRecord, allowed: access.Level) -> dict[str, Any]:
    """A table row as the page draws it (never arguments or results)."""
    shown = present.rows([record], allowed)[0]
    return {
        **present.live_row(shown, allowed),
        "name": shown.name,
        "queue": shown.queue,
        "attempt": shown.attempt,
        "sent_at": None if shown.sent_at is None else shown.sent_at.isoformat(),
        "url": reverse("tasktrail:task_detail", args=[shown.id]),
    }


def _counts(now: datetime) -> list[dict[str, Any]]:
    return [
        {"window": c.window, "total": c.total, "exact": c.exact, "by_state": c.by_state}
        for c in overview.counts(now)
    ]


def batch(follow: Follow, since: queries.Cursor, counts: bool) -> Batch:
    """What is new to the list since ``since`` (runs in the hub's database thread)."""
    subset = RUNNING if follow.kind == "running" else None
    found = queries.newer(follow.where, since, LIMIT, subset)
    cursor = (found[0].updated_at, found[0].id) if found else since
    rows = [row(r, follow.level) for r in reversed(found)]  # oldest first: prepended in turn
    return Batch(rows, cursor, _counts(timezone.now()) if counts else None)


def _batch(job: tuple[Follow, queries.Cursor, bool]) -> Batch:
    return batch(*job)


def _now_cursor() -> queries.Cursor:
    # Sorts before every task id updated at the same moment.
    return (timezone.now(), "")


def _event(found: Batch) -> bytes:
    data: dict[str, Any] = {"tasks": found.rows}
    if found.counts is not None:
        data["counts"] = found.counts
    text = json.dumps(data, cls=responses.Encoder)
    return f"id: {queries.format_cursor(found.cursor)}\ndata: {text}\n\n".encode()


@require_GET
async def list_events(request: HttpRequest) -> HttpResponseBase:
    followed = await sync_to_async(_follow, thread_sensitive=False)(request)
    if isinstance(followed, JsonResponse):
        return followed
    follow, key = followed
    since = _start(request) or _now_cursor()
    if request.GET.get("once") == "1" or not isinstance(request, ASGIRequest):
        found = await sync_to_async(_once, thread_sensitive=False)(follow, since)
        payload: dict[str, Any] = {
            "tasks": found.rows,
            "cursor": queries.format_cursor(found.cursor),
        }
        if found.counts is not None:
            payload["counts"] = found.counts
        return responses.json(payload)
    return streams.admitted(request, key, lambda: _stream(follow, since))


def _once(follow: Follow, since: queries.Cursor) -> Batch:
    close_old_connections()
    try:
        return batch(follow, since, follow.counts)
    finally:
        close_old_connections()


async def _stream(follow: Follow, since: queries.Cursor) -> AsyncIterator[bytes]:
    settings = conf.get()
    keepalive = settings.KEEPALIVE_INTERVAL.total_seconds()
    poll = max(MIN_GAP, settings.POLL_INTERVAL.total_seconds())
    hub = notify.hub()
    yield f"retry: {RETRY_MS}\n\n".encode()
    counted = -COUNTS_GAP
    quiet_since = time.monotonic()
    async with hub.watch_all() as doorbell:
        while True:
            started = time.monotonic()
            counts = follow.counts and started - counted >= COUNTS_GAP
            found: Batch = await hub.read(_batch, (follow, since, counts))
            if counts:
                counted = started
            if found.rows or found.counts is not None:
                since = found.cursor
                quiet_since = time.monotonic()
                yield _event(found)
            elif time.monotonic() - quiet_since >= keepalive:
                quiet_since = time.monotonic()
                yield KEEPALIVE
            wait = MIN_GAP - (time.monotonic() - started)
            if wait > 0:
                await asyncio.sleep(wait)
            await doorbell.wait(poll if not follow.counts else min(poll, COUNTS_GAP))
