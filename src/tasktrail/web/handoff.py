"""A live stream's body handed from Django's ASGI handler to :class:`LiveStreams`.

Django runs each ASGI request inside asgiref's ``ThreadSensitiveContext``: the first
``sync_to_async(thread_sensitive=True)`` of the request (every ``MiddlewareMixin``
middleware runs ``process_request`` and ``process_response`` that way in async mode:
sessions, CSRF, authentication, messages...) starts a thread of its own for that
request, and the thread lives until the response ends. A Server-Sent Events response
lasts as long as the page is open, so each stream held an idle thread (and the
request, its middleware's state and two tasks of Django's handler): 5,000 streams were
5,004 threads in 331 MiB.

Wrapped in :class:`LiveStreams`, a stream's request goes through Django as any other
(every middleware, the access rule, the limits, headers and cookies), but the view
leaves its events in the request's :class:`Slot` and gives Django an empty body. Django
then ends the request as usual (``request_finished`` closes its database connections,
its thread ends) and the wrapper sends the events itself, on the ASGI connection,
until they end or the client leaves. Without the wrapper (or when a middleware
re-encodes the body, as ``GZipMiddleware`` does) Django iterates the events itself, as
before.

Only the standard ASGI messages are used, so this does not depend on how a Django
release structures its handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI 3 application (Django types its own with narrower mappings).
ASGIApp = Callable[..., Awaitable[None]]

#: Where the wrapper puts a request's :class:`Slot` in the ASGI scope.
SCOPE_KEY = "tasktrail.handoff"


class Slot:
    """One request's handoff: the events its view left, and what Django sent of them."""

    __slots__ = ("_events", "_handed", "_inline")

    def __init__(self) -> None:
        self._events: Any = None
        self._handed = False
        self._inline = False

    def body(self, events: Any) -> AsyncIterator[bytes]:
        """The body Django iterates for ``events``: nothing if they are handed over."""
        self._events = events
        return self._body()

    async def _body(self) -> AsyncIterator[bytes]:
        events = self._events
        if self._inline:
            # A middleware re-encodes the body (Content-Encoding): Django must send it.
            self._events = None
            async for chunk in events:
                yield chunk
            return
        self._handed = True
        return
        yield  # an async generator that yields nothing

    def started(self, headers: Any) -> None:
        for name, _ in headers:
            if bytes(name).lower() == b"content-encoding":
                self._inline = True

    def swallows(self, message: Message) -> bool:
        """Whether ``message`` is Django's end of a body the wrapper will send instead."""
        return (
            self._handed
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and not message.get("body")
        )

    def detach(self) -> tuple[Any, bool]:
        """The events left here, and whether Django handed their body over."""
        events, self._events = self._events, None
        return events, self._handed


def body(request: object, events: Any) -> Any:
    """The body of a stream's response: handed over if ``request`` came through
    :class:`LiveStreams`, else ``events`` themselves (Django sends them)."""
    scope = getattr(request, "scope", None)
    slot = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return slot.body(events) if isinstance(slot, Slot) else events


class LiveStreams:
    """ASGI middleware: live streams outlive their Django request (no thread each).

    ``application = LiveStreams(get_asgi_application())``, or
    :func:`tasktrail.asgi.get_asgi_application`. Other requests pass through untouched
    (one object and one function call more each).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = Slot()

        async def django_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                slot.started(message.get("headers", ()))
            elif slot.swallows(message):
                return
            await send(message)

        # Django runs in a task (and so a context) of its own: what it leaves in its
        # context variables (asgiref's Local storage of the request: its database
        # connections, its locale...) ends with it, instead of staying in this task's
        # context for as long as the stream lasts (and being copied into the watcher's).
        django = asyncio.ensure_future(self.app({**scope, SCOPE_KEY: slot}, receive, django_send))
        await django
        del django, django_send
        events, handed = slot.detach()
        if events is None:
            return
        if not handed:
            # The view's response was replaced (a middleware answered instead): the
            # events never start, but their lease must come back.
            await events.aclose()
            return
        await serve(events, receive, send)


async def serve(events: Any, receive: Receive, send: Send) -> None:
    """Send ``events`` as the response's body until they end or the client leaves.

    The client leaving is heard on ``receive`` (``http.disconnect``): it cancels this
    task where the events wait, which ends them (their ``finally`` returns the lease).
    """
    task = asyncio.current_task()
    assert task is not None
    sending = True

    def heard(watcher: asyncio.Future[None]) -> None:
        # Only while the events are sent: a cancel requested later would hit the
        # server's code after this returns.
        if sending and not watcher.cancelled():
            task.cancel()

    watcher = asyncio.ensure_future(_until_disconnect(receive))
    watcher.add_done_callback(heard)
    try:
        async for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # cancelled from outside (the server stops): not ours to swallow
        task.uncancel()  # the client left
    finally:
        sending = False
        watcher.cancel()
        await events.aclose()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
