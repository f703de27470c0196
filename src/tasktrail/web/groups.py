"""Groups, chords and chains over HTTP: JSON status, Server-Sent Events, dashboard pages.

The same rule as a task's (:func:`tasktrail.access.canvas_level`): a canvas is seen
as its least visible task is, and an unknown canvas and a hidden one get the same 404.
Each member, callback and step is shown as :func:`tasktrail.access.snapshot` shows a
task at that level; a group's result only when every part of it shows its outcome.

The stream sends the canvas's status at once and again each time one of its tasks
changes (the process's one listener, as a task's stream), and closes when the canvas
is done. A member not yet recorded when the stream opened (a group still being sent)
is caught by the re-read every ``KEEPALIVE_INTERVAL``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.functional import LazyObject
from django.views.decorators.http import require_GET

from .. import access, canvas
from ..exceptions import TaskNotFound
from ..records import ChainStatus, GroupStatus, TaskRecord
from . import dashboard, follow, present, responses, streams
from .follow import Lookup, Status, version
from .views import viewer


def _task(record: TaskRecord | None, level: access.Level) -> dict[str, Any] | None:
    return None if record is None else access.snapshot(record, level)


def _outcome_shown(records: list[TaskRecord], level: access.Level) -> bool:
    return all(access.disclosure(level, r).outcome for r in records)


def group_snapshot(status: GroupStatus, level: access.Level) -> dict[str, Any]:
    """The group as ``level`` may see it, ready for JSON."""
    data: dict[str, Any] = {
        "id": status.id,
        "kind": status.kind,
        "state": status.state,
        "ready": status.ready,
        "total": status.total,
        "done": status.done,
        "failed": status.failed,
        "running": status.running,
        "waiting": status.waiting,
        "progress": status.progress,
        "percent": status.percent,
        "counts": dict(status.counts),
        "members": [access.snapshot(m, level) for m in status.members],
        "callback_id": status.callback_id,
        "callback": _task(status.callback, level),
        "version": version(status),
    }
    if status.result is not None and _outcome_shown(canvas.records(status), level):
        data["result"] = status.result
    return data


def chain_snapshot(status: ChainStatus, level: access.Level) -> dict[str, Any]:
    """The chain as ``level`` may see it, ready for JSON."""
    current = status.current
    data: dict[str, Any] = {
        "id": status.id,
        "kind": "chain",
        "state": status.state,
        "ready": status.ready,
        "total": len(status.steps),
        "done": status.done,
        "failed": status.failed,
        "progress": status.progress,
        "percent": status.percent,
        "current": None if current is None else current.position,
        "steps": [
            {
                "position": s.position,
                "id": s.task_id,
                "name": s.name,
                "sent": s.sent,
                "state": s.state,
                "task": _task(s.record, level),
                "group": None if s.group is None else group_snapshot(s.group, level),
            }
            for s in status.steps
        ],
        "version": version(status),
    }
    if status.result is not None and _outcome_shown(canvas.records(status), level):
        data["result"] = status.result
    return data


def snapshot(status: Status, level: access.Level) -> dict[str, Any]:
    """A group's, chord's or chain's snapshot as ``level`` may see it, ready for JSON."""
    if isinstance(status, GroupStatus):
        return group_snapshot(status, level)
    return chain_snapshot(status, level)


def _json(lookup: Lookup, request: HttpRequest, canvas_id: str) -> HttpResponse:
    try:
        status, level = lookup(canvas_id, viewer(request))
    except TaskNotFound:
        return responses.not_found()
    return responses.json(snapshot(status, level))


@require_GET
def group_status(request: HttpRequest, group_id: str) -> HttpResponse:
    return _json(canvas.visible_group, request, group_id)


@require_GET
def chain_status(request: HttpRequest, task_id: str) -> HttpResponse:
    return _json(canvas.visible_chain, request, task_id)


# -- the event stream -----------------------------------------------------------------


def event(status: Status, level: access.Level) -> bytes:
    """The canvas as ``level`` may see it, as one event whose id is its version."""
    data = json.dumps(snapshot(status, level), cls=responses.Encoder)
    return f"id: {version(status)}\ndata: {data}\n\n".encode()


_event = event


def _user(request: HttpRequest) -> Any:
    """The request's user itself, not the lazy object standing for it (which holds the
    whole request, for as long as the stream lasts)."""
    user: Any = viewer(request)
    if isinstance(user, LazyObject):
        bool(user.is_authenticated)  # evaluates it
        return user._wrapped
    return user


def _open(
    lookup: Lookup, request: HttpRequest, canvas_id: str
) -> tuple[Status, access.Level, Any, str]:
    user = _user(request)
    status, level = lookup(canvas_id, user)
    return status, level, user, streams.viewer_key(request)


async def _events(lookup: Lookup, request: HttpRequest, canvas_id: str) -> HttpResponseBase:
    if not isinstance(request, ASGIRequest):
        return streams.refused()
    try:
        status, level, user, key = await streams.in_thread(_open, lookup, request, canvas_id)
    except TaskNotFound:
        return responses.not_found()
    seen = request.headers.get("Last-Event-ID")
    if status.ready and seen == str(version(status)):
        return HttpResponse(status=204, headers=responses.NO_STORE)
    return streams.admitted(
        request, key, lambda: _stream(lookup, user, canvas_id, status, level, seen)
    )


async def _stream(
    lookup: Lookup,
    user: Any,
    canvas_id: str,
    status: Status,
    level: access.Level,
    seen: str | None,
) -> AsyncIterator[bytes]:
    yield f"retry: {streams.RETRY_MS}\n\n".encode()
    try:
        async for change in follow.canvas_status(lookup, canvas_id, user, status, seen):
            yield streams.KEEPALIVE if change is None else event(*change)
    except TaskNotFound:
        return  # forgotten while watched: the stream ends, and a reconnect gets the 404


@require_GET
async def group_events(request: HttpRequest, group_id: str) -> HttpResponseBase:
    return await _events(canvas.visible_group, request, group_id)


@require_GET
async def chain_events(request: HttpRequest, task_id: str) -> HttpResponseBase:
    return await _events(canvas.visible_chain, request, task_id)


# -- the dashboard's pages ------------------------------------------------------------


def _operator_page(
    request: HttpRequest, read: Callable[[str], Status], canvas_id: str
) -> tuple[Status, access.Level]:
    """The canvas for an operator (the dashboard's rule: staff and ``VIEW_PERMISSION``
    see every task); 404 for everyone else and for an unknown id alike."""
    level = dashboard.operator_level(request)
    try:
        return read(canvas_id), level
    except TaskNotFound:
        raise Http404("not found") from None


@require_GET
def group_detail(request: HttpRequest, group_id: str) -> HttpResponse:
    status, level = _operator_page(request, canvas.group, group_id)
    assert isinstance(status, GroupStatus)
    callback = status.callback
    shown = group_snapshot(status, level)
    context: dict[str, Any] = {
        "group": status,
        "tasks": present.rows(list(status.members), level),
        "callback": None if callback is None else present.rows([callback], level)[0],
        "counts": sorted(status.counts.items()),
        "shown": shown,
        "limit": canvas.MEMBERS_SHOWN,
    }
    if "result" in shown:
        context["result_json"] = present.pretty(shown["result"])
    return dashboard.render_page(request, "tasktrail/dashboard/group.html", context)


@require_GET
def chain_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    status, level = _operator_page(request, canvas.chain, task_id)
    assert isinstance(status, ChainStatus)
    shown = chain_snapshot(status, level)
    context: dict[str, Any] = {
        "chain": status,
        "shown": shown,
        "steps": [
            (s, None if s.record is None else present.rows([s.record], level)[0])
            for s in status.steps
        ],
    }
    if "result" in shown:
        context["result_json"] = present.pretty(shown["result"])
    return dashboard.render_page(request, "tasktrail/dashboard/group.html", context)
