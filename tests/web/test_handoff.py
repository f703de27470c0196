"""``LiveStreams`` around Django's real ASGI handler, in the corners a server test does
not reach: a middleware that replaces the stream's response (its lease must come back
though the stream never starts), and one that re-encodes the body (Django then sends
the stream itself, gzipped as the middleware asked)."""

from __future__ import annotations

import asyncio
import gc
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import override_settings

from tasktrail import access
from tasktrail.asgi import LiveStreams
from tasktrail.web import limits
from tests.conftest import recorded

pytestmark = pytest.mark.django_db(transaction=True)


class ReplaceStreams:
    """A middleware answering in place of every stream (as an error page would)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[Any]]) -> None:
        self.get_response = get_response
        assert iscoroutinefunction(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> Any:
        response = await self.get_response(request)
        return HttpResponse("replaced") if response.streaming else response


def scope(path: str, query: str, **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def call(app: Any, request_scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message ``app`` sends; the client leaves once the app returns."""
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        gone = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(app(request_scope, receive, send), 10)
        gone.set()

    asyncio.run(run())
    return sent


def _middleware(*extra: str) -> list[str]:
    return [*extra, *settings.MIDDLEWARE]


def _polling() -> dict[str, Any]:
    return {**settings.TASKTRAIL, "NOTIFY": "polling", "POLL_INTERVAL": 0.05}


@pytest.mark.parametrize("wrapped", [True, False], ids=["LiveStreams", "django"])
def test_a_stream_whose_response_a_middleware_replaced_gives_its_lease_back(
    wrapped: bool,
) -> None:
    recorded("replaced-1", "STARTED")
    middleware = _middleware("tests.web.test_handoff.ReplaceStreams")
    with override_settings(MIDDLEWARE=middleware, TASKTRAIL=_polling()):
        handler = ASGIHandler()
        app = LiveStreams(handler) if wrapped else handler
        path = "/tasktrail/tasks/replaced-1/events/"
        sent = call(app, scope(path, f"token={access.sign('replaced-1')}"))
        gc.collect()
        assert limits.open_streams() == 0
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"replaced"


def test_a_stream_a_middleware_gzips_is_sent_by_django_itself() -> None:
    recorded("gzipped-1", "SUCCESS")
    middleware = _middleware("django.middleware.gzip.GZipMiddleware")
    with override_settings(MIDDLEWARE=middleware, TASKTRAIL=_polling()):
        app = LiveStreams(ASGIHandler())
        path = "/tasktrail/tasks/gzipped-1/events/"
        query = f"token={access.sign('gzipped-1')}"
        sent = call(app, scope(path, query, accept_encoding="gzip"))
        assert limits.open_streams() == 0
    headers = dict(sent[0]["headers"])
    assert headers[b"Content-Encoding"] == b"gzip"
    body = gzip.decompress(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body.startswith(b"retry: 1000\n\n") and b'"state": "SUCCESS"' in body
    assert sent[-1].get("more_body", False) is False
