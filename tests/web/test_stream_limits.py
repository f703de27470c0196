"""Live streams on a real uvicorn with real HTTP clients: the limits, a lease back when
its client leaves, and streams that hold no thread behind ``tasktrail.asgi``.

Each entry point is served: ``django`` (Django's own ASGI application: it sends each
stream itself, a thread each) and ``tasktrail`` (``LiveStreams`` sends them once
Django's request has ended). The server runs in a thread of this process, so the
test reads the process's stream count (:func:`tasktrail.web.limits.open_streams`) and
its threads directly; the clients are raw sockets, as an ``EventSource`` talks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from tasktrail import access
from tasktrail.web import limits
from tests.conftest import recorded

from .conftest import serve_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

ENTRIES = ("django", "tasktrail")


@pytest.fixture(scope="module", params=ENTRIES)
def server(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[tuple[str, int]]:
    """uvicorn serving this run's Django through one entry point: (entry, port)."""
    if request.param == "tasktrail":
        from tasktrail.asgi import get_asgi_application
    else:
        from django.core.asgi import get_asgi_application
    with serve_in_thread(get_asgi_application()) as port:
        yield request.param, port


@contextlib.contextmanager
def limited(**values: Any) -> Iterator[None]:
    tasktrail = {**settings.TASKTRAIL, "NOTIFY": "polling", "POLL_INTERVAL": 0.05, **values}
    with override_settings(TASKTRAIL=tasktrail):
        yield


@dataclasses.dataclass
class Stream:
    """One ``GET .../events/`` over a socket of its own, left open until closed."""

    status: int
    headers: dict[str, str]
    sock: socket.socket
    buffered: bytes

    @classmethod
    def open(cls, port: int, path: str) -> Stream:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(int(lines[0].split()[1]), headers, sock, rest)

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        """What the stream sent up to and including ``needle``."""
        self.sock.settimeout(timeout)
        while needle not in self.buffered:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before {needle!r}: {self.buffered!r}")
            self.buffered += chunk
        return self.buffered

    def close(self) -> None:
        self.sock.close()


def events_path(task_id: str, token: str | None = None) -> str:
    return f"/tasktrail/tasks/{task_id}/events/?token={token or access.sign(task_id)}"


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def opened(server: tuple[str, int]) -> Iterator[Callable[[str], Stream]]:
    """Opens streams on the server; closes them after the test, and waits until the
    process counts none (a lease not given back fails the test)."""
    streams: list[Stream] = []

    def open_(path: str) -> Stream:
        stream = Stream.open(server[1], path)
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()
    eventually(lambda: limits.open_streams() == 0)


def test_one_viewer_past_its_share_gets_429_while_another_still_streams(
    server: tuple[str, int], opened: Callable[[str], Stream]
) -> None:
    recorded("limit-1", "STARTED")
    mine, theirs = access.sign("limit-1"), access.sign("limit-1", timedelta(hours=2))
    assert mine != theirs  # two links: two viewers
    with limited(STREAMS_PER_VIEWER=2):
        first, second = (opened(events_path("limit-1", mine)) for _ in range(2))
        assert (first.status, second.status) == (200, 200)
        refused = opened(events_path("limit-1", mine))
        assert refused.status == 429, server
        assert refused.headers["retry-after"] == str(limits.RETRY_AFTER)
        assert b"too many live streams" in refused.read_until(b"}")
        other = opened(events_path("limit-1", theirs))
        assert other.status == 200
        other.read_until(b'"state": "STARTED"')


def test_a_full_process_answers_503_with_retry_after(
    server: tuple[str, int], opened: Callable[[str], Stream]
) -> None:
    recorded("full-1", "STARTED")
    with limited(STREAMS_PER_PROCESS=3):
        assert [opened(events_path("full-1")).status for _ in range(3)] == [200] * 3
        refused = opened(events_path("full-1"))
        assert (refused.status, refused.headers.get("retry-after")) == (503, "10"), server


def test_a_lease_comes_back_when_its_client_leaves(
    server: tuple[str, int], opened: Callable[[str], Stream]
) -> None:
    recorded("leave-1", "STARTED")
    token = access.sign("leave-1")
    viewer = limits.viewer_key(None, None, token, None)
    with limited(STREAMS_PER_VIEWER=1):
        first = opened(events_path("leave-1", token))
        first.read_until(b"data: ")
        assert limits.open_streams(viewer) == 1
        assert opened(events_path("leave-1", token)).status == 429
        first.close()  # no goodbye: the socket just goes, as a closed tab's does
        eventually(lambda: limits.open_streams(viewer) == 0)
        again = opened(events_path("leave-1", token))
        assert again.status == 200, server


def test_a_stream_carries_each_change_and_its_lease_ends_with_it(
    server: tuple[str, int], opened: Callable[[str], Stream]
) -> None:
    recorded("change-1", "STARTED")
    with limited():
        stream = opened(events_path("change-1"))
        stream.read_until(b'"state": "STARTED"')
        recorded("change-1", "PROGRESS", progress_current=1.0, progress_total=2.0)
        stream.read_until(b'"state": "PROGRESS"')
        recorded("change-1", "SUCCESS")
        body = stream.read_until(b'"state": "SUCCESS"')
        # The task is done: the server ends the response (chunked: a last, empty chunk).
        stream.read_until(b"0\r\n\r\n")
        assert body.count(b"data: ") == 3, server
        eventually(lambda: limits.open_streams() == 0)


def test_behind_live_streams_a_stream_holds_no_thread(
    server: tuple[str, int], opened: Callable[[str], Stream]
) -> None:
    entry, _ = server
    recorded("threads-1", "STARTED")
    with limited():
        # Warm up: the hub's thread and the loop's shared pool exist before counting.
        for stream in [opened(events_path("threads-1")) for _ in range(8)]:
            stream.read_until(b"data: ")
        before = threading.active_count()
        streams = [opened(events_path("threads-1")) for _ in range(30)]
        for stream in streams:
            stream.read_until(b"data: ")
        time.sleep(0.5)
        grown = threading.active_count() - before
    if entry == "tasktrail":
        # At most the loop's shared pool growing to its size (min(32, CPUs + 4)).
        assert grown <= 6, grown
    else:
        # Why LiveStreams exists: Django gives each request a thread for its sync
        # middleware (sessions, auth, messages) until the response ends.
        assert grown >= 30, grown
