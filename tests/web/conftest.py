"""A real uvicorn serving this test run's Django, for what Django's test clients do not
show as a server does (percent-decoding of paths, headers on the wire)."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def uvicorn_server(django_db_setup: None) -> Iterator[Server]:
    import uvicorn
    from django.core.asgi import get_asgi_application

    port = _free_port()
    config = uvicorn.Config(
        get_asgi_application(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield Server(port)
    server.should_exit = True
    thread.join(10)
