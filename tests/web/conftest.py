"""A real uvicorn serving this test run's Django, for what Django's test clients do not
show as a server does (percent-decoding of paths, headers on the wire)."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import sites


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    #: The whole body, or a stream's first chunk.
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    port: int

    def get(self, path: str, cookie: str = "") -> Answer:
        """``path`` exactly as given (already percent-encoded), as a browser sends it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.putrequest("GET", path, skip_accept_encoding=True)
            if cookie:
                connection.putheader("Cookie", cookie)
            connection.endheaders()
            response = connection.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            streaming = headers.get("content-type", "").startswith("text/event-stream")
            body = response.read1() if streaming else response.read()
            return Answer(response.status, headers, body)
        finally:
            connection.close()


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[int]:
    """uvicorn serving the ASGI ``app`` in a thread of this process until the block ends:
    its port. In this process, so it reads the run's test database and settings."""
    import uvicorn

    port = sites.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def uvicorn_server(django_db_setup: None) -> Iterator[Server]:
    from django.core.asgi import get_asgi_application

    with serve_in_thread(get_asgi_application()) as port:
        yield Server(port)
