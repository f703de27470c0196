"""WebSockets for sites that run Django Channels: a task's, group's or chain's live status.

The same stream as the Server-Sent Events of :mod:`tasktrail.web.sse` and
:mod:`tasktrail.web.groups`, over a WebSocket: one text message per change, each the
JSON the event stream's ``data`` carries (:func:`tasktrail.access.snapshot`, the group
and chain snapshots), fed by the process's one hub (:mod:`tasktrail.notify.hub`), and
closed with code 1000 once the task (or canvas) is done. A client that reconnects sends
``?last_event_id=<version>`` (the snapshot's ``version``, as ``Last-Event-ID`` carries
the event id) and gets only what is new; if it already has the final state, the socket
closes at once with 1000.

Every refusal is a close after the handshake, so a browser's ``CloseEvent`` reads it:
code ``4000 + the HTTP status`` the SSE stream answers, reason the JSON body it would
carry. ``4404 {"error": "not found"}`` for an unknown id *and* for a task this viewer
may not see (the access rule of :func:`tasktrail.access.lookup`: no existence leak);
``4429`` / ``4503`` with ``retry_after`` (seconds) past the limits of
:mod:`tasktrail.web.limits`, whose lease the socket holds until it closes; ``4403``
for a page of another site (below).

A browser sends its cookies with a WebSocket handshake whatever page opens it, and no
CORS rule keeps that page from reading the answer. So a handshake whose ``Origin`` is
not this host (``Host``, or ``X-Forwarded-Host`` under ``USE_X_FORWARDED_HOST``), nor
one of ``CSRF_TRUSTED_ORIGINS``, is refused before any task is looked up: the rule of
Django's CSRF check. A client that is not a browser sends no ``Origin``, nor anyone's
cookies but its own.

Importing this module needs Channels (``pip install "django-tasktrail[channels]"``);
nothing else in tasktrail imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    from channels.consumer import AsyncConsumer
    from channels.exceptions import StopConsumer
except ImportError as error:
    raise ImportError(
        "tasktrail.channels needs Django Channels: "
        'pip install "django-tasktrail[channels]" (or pip install channels)'
    ) from error

from django.conf import settings
from django.urls import URLPattern, path, re_path
from django.utils.http import is_same_domain

from . import access, canvas, notify
from . import urls as _urls  # noqa: F401  (registers the tasktrail_id path converter)
from .exceptions import TaskNotFound
from .web import follow, groups, limits, responses, sse
from .web.follow import Status

logger = logging.getLogger("tasktrail.channels")

#: The socket's close codes. 1000: the final state was sent (or the client had it).
DONE = 1000
#: Cross-site page: refused before any lookup.
FORBIDDEN = 4403
#: Unknown id, hidden task, malformed path: one answer for all.
NOT_FOUND = 4404
#: ``4000 + status`` for :class:`tasktrail.web.limits.Refusal`: 4429 (viewer), 4503 (process).
REFUSED_BASE = 4000
#: Something broke on the server (logged); the client may reconnect.
SERVER_ERROR = 1011
#: A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455, 5.5).
MAX_REASON_BYTES = 123

#: The query parameter that plays ``Last-Event-ID`` (a browser cannot set headers on a
#: WebSocket handshake).
LAST_EVENT_ID = "last_event_id"


def reason(error: str, retry_after: int | None = None) -> str:
    """A close reason: the JSON body the HTTP answer carries, and when to come back."""
    body: dict[str, Any] = {"error": error}
    if retry_after is not None:
        body["retry_after"] = retry_after
    text = json.dumps(body, separators=(",", ":"))
    if len(text.encode()) > MAX_REASON_BYTES:
        raise ValueError(f"close reason over {MAX_REASON_BYTES} bytes: {text!r}")
    return text


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def same_origin(scope: Mapping[str, Any]) -> bool:
    """Whether the handshake comes from a page of this site (or from no browser)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host") or ""
    if settings.USE_X_FORWARDED_HOST:
        forwarded = _header(scope, b"x-forwarded-host")
        if forwarded:
            host = forwarded.split(",")[0].strip()
    seen = urlsplit(origin)
    if seen.netloc and seen.netloc.lower() == host.lower():
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        allowed = urlsplit(trusted)
        if allowed.scheme != seen.scheme:
            continue
        if allowed.netloc == seen.netloc:
            return True
        if allowed.netloc.startswith("*.") and is_same_domain(seen.netloc, allowed.netloc[1:]):
            return True
    return False


def _query(scope: Mapping[str, Any], name: str) -> str | None:
    values = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get(name)
    # The last one, as Django's QueryDict.get reads it.
    return values[-1] if values else None


def viewer_key(scope: Mapping[str, Any], token: str | None) -> str:
    """Who this socket is counted against (:func:`tasktrail.web.limits.viewer_key`)."""
    user = scope.get("user")
    user_pk = user.pk if user is not None and user.is_authenticated else None
    session = scope.get("session")
    session_key = None if session is None else session.session_key
    client = scope.get("client")
    return limits.viewer_key(user_pk, session_key, token, client[0] if client else None)


class _Live(AsyncConsumer):
    """One socket: serves its stream in a task of its own, so the consumer still
    receives the client's close (and cancels the stream) while it waits for changes."""

    _serving: asyncio.Task[None] | None = None

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self._serving = asyncio.create_task(self._serve())

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Clients have nothing to say: what they send is ignored."""

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        serving = self._serving
        if serving is not None and not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        raise StopConsumer()

    async def _serve(self) -> None:
        try:
            await self.send({"type": "websocket.accept"})
            if not same_origin(self.scope):
                await self.close(FORBIDDEN, reason("cross-site WebSocket refused"))
                return
            token = _query(self.scope, "token")
            lease = limits.admit(viewer_key(self.scope, token))
            if isinstance(lease, limits.Refusal):
                code = REFUSED_BASE + lease.status
                await self.close(code, reason(lease.reason, lease.retry_after))
                return
            with lease:
                await self.stream(token, _query(self.scope, LAST_EVENT_ID))
        except asyncio.CancelledError:
            raise
        except OSError:
            # The client went while a message was on its way (uvicorn's
            # ClientDisconnected): its disconnect ends the consumer.
            return
        except Exception:
            logger.exception("tasktrail: WebSocket stream failed (%s)", self.scope.get("path"))
            with contextlib.suppress(Exception):
                await self.close(SERVER_ERROR, reason("server error"))

    async def stream(self, token: str | None, seen: str | None) -> None:
        raise NotImplementedError

    async def close(self, code: int, why: str) -> None:
        await self.send({"type": "websocket.close", "code": code, "reason": why})

    async def send_json(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, cls=responses.Encoder)
        await self.send({"type": "websocket.send", "text": text})

    async def not_found(self) -> None:
        await self.close(NOT_FOUND, reason(responses.NOT_FOUND["error"]))

    def argument(self, name: str) -> str:
        value: str = self.scope["url_route"]["kwargs"][name]
        return value


class TaskConsumer(_Live):
    """``<prefix>tasks/<id>/ws/``: a task, for its owner, staff, or a signed link's
    holder (``?token=``), exactly as its event stream."""

    async def stream(self, token: str | None, seen: str | None) -> None:
        user = self.scope.get("user")
        try:
            record, allowed = await sse.in_thread(
                access.lookup, self.argument("task_id"), user, token
            )
        except TaskNotFound:
            await self.not_found()
            return
        if record.ready and seen == str(notify.version(record)):
            await self.close(DONE, "")
            return
        async for current in follow.task(record.id, seen):
            # No keep-alive to send: the server's own pings keep an idle socket open
            # through proxies.
            if current is not None:
                await self.send_json(access.snapshot(current, allowed))
        await self.close(DONE, "")


class _CanvasConsumer(_Live):
    """A group, chord or chain, as its event stream: re-read (and the access rule asked
    again) on each change of one of its tasks and every ``KEEPALIVE_INTERVAL``, which
    catches members recorded after the socket opened. Signed links open no canvas."""

    route_argument: str

    def find(self, canvas_id: str, user: Any) -> tuple[Status, access.Level]:
        raise NotImplementedError

    async def stream(self, token: str | None, seen: str | None) -> None:
        canvas_id, user = self.argument(self.route_argument), self.scope.get("user")
        try:
            status, _ = await sse.in_thread(self.find, canvas_id, user)
        except TaskNotFound:
            await self.not_found()
            return
        if status.ready and seen == str(follow.version(status)):
            await self.close(DONE, "")
            return
        try:
            async for change in follow.canvas_status(self.find, canvas_id, user, status, seen):
                if change is not None:
                    await self.send_json(groups.snapshot(*change))
        except TaskNotFound:
            # Forgotten while watched: as an unknown canvas.
            await self.not_found()
            return
        await self.close(DONE, "")


class GroupConsumer(_CanvasConsumer):
    """``<prefix>groups/<group id>/ws/``: a group or a chord (by its header's group id)."""

    route_argument = "group_id"

    def find(self, canvas_id: str, user: Any) -> tuple[Status, access.Level]:
        return canvas.visible_group(canvas_id, user)


class ChainConsumer(_CanvasConsumer):
    """``<prefix>chains/<any step's id>/ws/``: the chain that task is a step of."""

    route_argument = "task_id"

    def find(self, canvas_id: str, user: Any) -> tuple[Status, access.Level]:
        return canvas.visible_chain(canvas_id, user)


class NotFoundConsumer(_Live):
    """Any other path under the prefix (an id holding an unencoded ``/``, a typo): the
    same 4404 as an unknown id, instead of Channels' "No route found" error."""

    async def stream(self, token: str | None, seen: str | None) -> None:
        await self.not_found()


def urlpatterns(prefix: str = "tasktrail/") -> list[URLPattern]:
    """The WebSocket routes under ``prefix``: the prefix the site's ``urls.py`` mounts
    ``tasktrail.urls`` at (the widget's socket URL is its event stream's, with ``ws/``
    for ``events/``). For ``URLRouter``; without a leading ``/``, as Django's paths."""
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"the prefix must end with '/': {prefix!r}")
    return [
        path(f"{prefix}tasks/<tasktrail_id:task_id>/ws/", _app(TaskConsumer)),
        path(f"{prefix}groups/<tasktrail_id:group_id>/ws/", _app(GroupConsumer)),
        path(f"{prefix}chains/<tasktrail_id:task_id>/ws/", _app(ChainConsumer)),
        re_path(rf"^{re.escape(prefix)}", _app(NotFoundConsumer)),
    ]


def _app(consumer: type[_Live]) -> Any:
    # Channels' URLRouter routes ASGI applications with Django's path(), whose stubs
    # type a view.
    return consumer.as_asgi()


#: The routes for tasktrail mounted at ``tasktrail/`` (``path("tasktrail/",
#: include("tasktrail.urls"))``): ``URLRouter(websocket_urlpatterns)``.
websocket_urlpatterns = urlpatterns()
