"""What every live stream (a task's, a canvas's, a list's) shares: its headers, its
admission under the limits (:mod:`.limits`), and its end.

A stream is admitted after its access check (a hidden task is a 404 before anything
is counted), with a lease from :func:`tasktrail.web.limits.admit` for its viewer
(:func:`viewer_key`); a refusal is answered with its status and ``Retry-After``. The
lease goes back when the events end, whichever way: they finish, the client leaves (the
server cancels them where they wait), or they never start (a middleware replaced the
response). The response's body is handed over to :class:`~.handoff.LiveStreams` when
the request came through it (no thread held per stream), else Django sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from . import handoff, limits, responses
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
    """The answer under WSGI, where a stream would hold a worker thread: poll instead.
    It carries no ``Retry-After``: trying again will not help (the widget stops)."""
    return responses.json({"error": "live updates need an ASGI server; poll the status"}, 503)


def viewer_key(request: HttpRequest) -> str:
    """Whom ``request``'s stream counts against (:func:`.limits.viewer_key`). Reads the
    user and the session (call it in a thread): the session is loaded first, so a
    made-up session cookie counts as no session, not as a viewer of its own."""
    user = viewer(request)
    user_pk = user.pk if user is not None and user.is_authenticated else None
    session = getattr(request, "session", None)
    session_key: str | None = None
    if session is not None:
        session.keys()  # loads it: an unknown key is dropped
        session_key = session.session_key
    return limits.viewer_key(
        user_pk, session_key, request.GET.get("token"), request.META.get("REMOTE_ADDR")
    )


def refusal(refused: limits.Refusal) -> HttpResponse:
    """429 (this viewer's share is used) or 503 (this process is full), with
    ``Retry-After``; the widget and the dashboard poll meanwhile."""
    response = responses.json({"error": refused.reason}, refused.status)
    for header, value in refused.headers.items():
        response[header] = value
    return response


class Leased(AsyncIterator[bytes]):
    """A stream's events holding its lease until they end, whichever way they do."""

    __slots__ = ("_events", "_lease")

    def __init__(self, events: AsyncIterator[bytes], lease: limits.Lease) -> None:
        self._events = events
        self._lease: limits.Lease | None = lease

    def __aiter__(self) -> Leased:
        return self

    async def __anext__(self) -> bytes:
        if self._lease is None:
            raise StopAsyncIteration
        try:
            return await anext(self._events)
        except BaseException:
            # Ended (StopAsyncIteration), failed, or cancelled where it waited (the
            # client left): the events are over either way.
            self.release()
            raise

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self.release()

    def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def __del__(self) -> None:
        # Never iterated nor closed (Django, not the wrapper, dropped the response).
        self.release()


def response(
    request: HttpRequest, events: AsyncIterator[bytes], lease: limits.Lease
) -> StreamingHttpResponse:
    """The ``text/event-stream`` response sending ``events`` under ``lease``."""
    body = handoff.body(request, Leased(events, lease))
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=HEADERS)


def admitted(
    request: HttpRequest, key: str, events: Callable[[], AsyncIterator[bytes]]
) -> HttpResponse | StreamingHttpResponse:
    """The stream of ``events()`` if ``key`` may open one more, else the refusal."""
    lease = limits.admit(key)
    if isinstance(lease, limits.Refusal):
        return refusal(lease)
    return response(request, events(), lease)
