"""A real ASGI server (uvicorn running tests/channels/asgi.py: Channels' router for
WebSockets, Django for HTTP) in a process of its own, on this run's test database, and a
real WebSocket client (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ARTIFACTS, ROOT, WORKER_PYTHONPATH

pytest.importorskip("channels", reason="tasktrail.channels needs the [channels] extra")
pytest.importorskip("websockets", reason="the WebSocket tests need the websockets client")


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    port: int
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@dataclasses.dataclass(frozen=True, slots=True)
class Closed:
    """What one socket received, and how the server closed it."""

    messages: list[dict[str, Any]]
    code: int | None
    reason: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(name: str, **env: str) -> Iterator[Server]:
    """uvicorn serving tests/channels/asgi.py with ``env`` (the stream limits) added."""
    from django.db import connection

    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"channels-{name}.log"
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.channels.settings",
        "TT_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": WORKER_PYTHONPATH,
        **env,
    }
    command = [
        sys.executable, "-m", "uvicorn", "tests.channels.asgi:application", "--host",
        "127.0.0.1", "--port", str(port), "--ws", "websockets", "--lifespan", "off",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/tasktrail/tasktrail.js", process, log_path)
            yield Server(port, log_path)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}; see {log}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer within 60 s; see {log}")


@pytest.fixture(scope="session")
def server(django_db_setup: None) -> Iterator[Server]:
    """The default limits (32 per viewer, 10,000 per process)."""
    with serve("default") as running:
        yield running


@pytest.fixture(scope="session")
def tight_server(django_db_setup: None) -> Iterator[Server]:
    """2 streams per viewer, 3 per process: small enough to reach in a test."""
    with serve("tight", TT_STREAMS_PER_VIEWER="2", TT_STREAMS_PER_PROCESS="3") as running:
        yield running


def cookie_of(user: Any) -> str:
    """A session cookie of ``user`` (stored in the test database the server reads)."""
    from tests.conftest import client_for

    client = client_for(user)
    return "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())


async def follow(
    url: str,
    cookie: str = "",
    origin: str | None = None,
    timeout: float = 30,
) -> Closed:
    """Every message of the socket at ``url`` until the server closes it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    headers = {"Cookie": cookie} if cookie else {}
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with connect(url, additional_headers=headers, origin=origin) as socket_:  # type: ignore[arg-type]
            with contextlib.suppress(ConnectionClosed):
                async for text in socket_:
                    messages.append(json.loads(text))
    return Closed(messages, socket_.close_code, socket_.close_reason or "")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
