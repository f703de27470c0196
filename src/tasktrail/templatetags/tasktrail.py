"""``{% load tasktrail %}{% tasktrail_status task_id %}``: a live status for one task;
``{% tasktrail_group group_id %}``: a live group bar for a group, chord or chain;
``{% tasktrail_asset name %}``: the URL of one of tasktrail's scripts or styles;
``tasktrail_seconds`` and ``tasktrail_duration``: durations for people."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from .. import access
from ..web.views import asset_source

register = template.Library()


#: The last segment of an event stream's path; its WebSocket's path has ``ws/`` instead.
_EVENTS = "events/"


def socket_url(events_path: str, query: str = "") -> str:
    """The WebSocket path (tasktrail.channels) beside an event stream's path: the
    routes of ``tasktrail.channels.urlpatterns(prefix)`` mirror ``tasktrail.urls``
    mounted at the same prefix. A path: the widget makes it ``ws://`` or ``wss://``."""
    if not events_path.endswith(_EVENTS):
        raise ValueError(f"not an event stream's path: {events_path!r}")
    return events_path.removesuffix(_EVENTS) + "ws/" + query


@register.inclusion_tag("tasktrail/widget.html")
def tasktrail_status(
    task_id: str,
    label: str = "",
    signed: bool = False,
    token: str | None = None,
    websocket: bool = False,
) -> dict[str, Any]:
    """State, progress bar, message and outcome of ``task_id``, kept live in the browser,
    in tasktrail.css's default look (themed through its CSS custom properties).

    The viewer's own rights apply (owner, staff, permission). ``signed=True`` embeds a
    fresh signed link instead, for pages that have already decided this visitor may
    see the task; ``token`` passes on one the page was opened with. ``websocket=True``
    follows it over a WebSocket (a site that runs Channels and routes
    ``tasktrail.channels``); the widget falls back to the event stream, then polling.
    """
    if signed:
        token = access.sign(task_id)
    query = f"?{urlencode({'token': token})}" if token else ""
    events = reverse("tasktrail:events", args=[task_id])
    return {
        "task_id": task_id,
        "label": label,
        "status_url": reverse("tasktrail:status", args=[task_id]) + query,
        "events_url": events + query,
        "ws_url": socket_url(events, query) if websocket else "",
        "script_url": tasktrail_asset("tasktrail.js"),
        "style_url": tasktrail_asset("tasktrail.css"),
    }


@register.inclusion_tag("tasktrail/group_widget.html")
def tasktrail_group(
    group_id: str, label: str = "", kind: str = "group", websocket: bool = False
) -> dict[str, Any]:
    """A group bar: the group's (or chord's) progress, ``7 of 10 done, 1 failed``, a
    mark per member and the outcome, kept live. ``kind="chain"`` shows the chain that
    ``group_id`` (any step's id) is a step of, a mark per step. The viewer's own rights
    apply, as for a task (see tasktrail.access.canvas_level). ``websocket=True``: as
    for a task."""
    route = "chain" if kind == "chain" else "group"
    events = reverse(f"tasktrail:{route}_events", args=[group_id])
    return {
        "kind": route,
        "label": label,
        "status_url": reverse(f"tasktrail:{route}_status", args=[group_id]),
        "events_url": events,
        "ws_url": socket_url(events) if websocket else "",
        "script_url": tasktrail_asset("tasktrail.js"),
    }


@register.simple_tag
def tasktrail_asset(name: str) -> str:
    """The versioned URL of one of tasktrail's scripts or styles (cached for a year)."""
    return f"{reverse('tasktrail:asset', args=[name])}?v={asset_source(name)[1]}"


@register.filter
def tasktrail_seconds(span: timedelta | None) -> str:
    """A duration for people: ``0.042 s``, ``3.1 s``, ``4 min 5 s``, ``2 h 3 min``."""
    if span is None:
        return ""
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


@register.simple_tag
def tasktrail_duration(start: datetime, end: datetime) -> str:
    return tasktrail_seconds(end - start)
