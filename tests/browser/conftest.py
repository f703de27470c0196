"""Headless Chromium (Debian's ``chromium``, driven by Playwright) against the example site.

The site runs as a user runs it: ``manage.py demo`` (a prefork worker and uvicorn), or
Django's WSGI ``runserver`` with a worker to check the polling fallback. Each setup
picks another notifier on its own: SQLite with the filesystem broker polls; SQLite
with a Redis broker uses Redis pub/sub; PostgreSQL uses LISTEN/NOTIFY.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sites
from tests.chromium import ARTIFACTS, screenshot, slug  # noqa: F401 (tests import screenshot here)
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example" / "manage.py"
#: The run's own database for the example sites (a name shared by every run kept the
#: migration state of whichever branch ran last, and a renumbered migration then failed).
PG_DATABASE = os.environ.get("TT_TEST_DB_NAME", "test_tasktrail") + "_browser"
#: A run's own Redis database when TT_BROKER names one: runs sharing a database (and the
#: demo's "celery" queue) would run each other's tasks against their own sites.
_OWN = os.environ.get("TT_BROKER", "")
REDIS_BROKER = _OWN if _OWN.startswith("redis://") else "redis://127.0.0.1:6379/12"


def apart(name: str) -> dict[str, str]:
    """:func:`serve`'s ``where`` for a test module's site of its own: a PostgreSQL database
    named after the module (the demo's page lists every task in its database) and the
    run's broker."""
    return {
        "database": f"{os.environ.get('TT_TEST_DB_NAME', 'test_tasktrail')}_{name}_browser",
        "broker": os.environ.get("TT_BROKER", REDIS_BROKER),
    }


#: Databases this session made afresh: the first site of a session starts from an empty
#: database, the later ones share it (each site migrates it again, which is quick).
_MADE: set[str] = set()


def _create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        conn.autocommit = True
        if name not in _MADE:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _MADE.add(name)
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def environment(
    setup: str, database: str = PG_DATABASE, broker: str = REDIS_BROKER
) -> dict[str, str]:
    """The example's environment for ``setup``; ``database`` and ``broker`` let a test
    module keep a site of its own apart from other runs."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "exampleproject.settings"}
    for name in ("TASKTRAIL_DEMO_DB", "TASKTRAIL_DEMO_BROKER", "PGDATABASE"):
        env.pop(name, None)
    if setup in {"redis", "postgres"}:
        require("Redis", "127.0.0.1", 6379)
        env["TASKTRAIL_DEMO_BROKER"] = broker
    if setup == "postgres":
        require("PostgreSQL", "127.0.0.1", 5432)
        _create_database(database)
        env.update(TASKTRAIL_DEMO_DB="postgres", PGDATABASE=database, PGHOST="127.0.0.1")
        env.setdefault("PGUSER", "postgres")
    return env


@dataclasses.dataclass
class Site:
    url: str
    setup: str
    processes: list[subprocess.Popen[bytes]]
    #: The site's output: ``manage.py demo`` prints the operator's password there.
    log: Path


def _wait_until_up(url: str, processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            pytest.fail(f"the example site exited; see {log}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"the example site did not come up within 60 s; see {log}")


@contextlib.contextmanager
def serve(
    setup: str, server: str = "asgi", settings: str | None = None, **where: str
) -> Iterator[Site]:
    """The example on a free port: ``manage.py demo`` (ASGI), or a worker and runserver.

    ``settings``: a settings module of the tests' own (the example's, with a change)
    instead of the example's, served by a worker and uvicorn (or runserver) started here.
    ``where``: :func:`environment`'s ``database`` and ``broker``.
    """
    env = environment(setup, **where)
    path = [str(ROOT / "example")]
    if settings is not None:
        env["DJANGO_SETTINGS_MODULE"] = settings
        path.append(str(ROOT))
    env["PYTHONPATH"] = os.pathsep.join(path)
    port = sites.free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    own = slug("-".join(where.get(k, "") for k in ("database",)))
    log_path = ARTIFACTS / f"site-{setup}-{server}{'-' + own if own else ''}.log"
    python = [sys.executable, str(MANAGE)]
    if server == "asgi" and settings is None:
        commands = [[*python, "demo", "--port", str(port)]]
    else:
        # A worker and a server of the test's own: manage.py demo starts its children
        # with the example's settings whatever DJANGO_SETTINGS_MODULE says.
        subprocess.run([*python, "migrate", "--verbosity=0"], env=env, check=True, cwd=ROOT)
        worker = f"-m celery -A exampleproject worker --concurrency=2 --hostname=site-{server}@%h"
        web = (
            [sys.executable, "-m", "uvicorn", "exampleproject.asgi:application", "--port",
             str(port), "--lifespan", "off", "--log-level", "warning"]
            if server == "asgi"
            else [*python, "runserver", "--noreload", f"127.0.0.1:{port}"]
        )  # fmt: skip
        commands = [[sys.executable, *worker.split()], web]
    with log_path.open("wb") as log:
        processes = [
            subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for command in commands
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(url + "/", processes, log_path)
            yield Site(url, setup, processes, log_path)
        finally:
            # With everything each started: the "sqlite" sites share the example's
            # database file and broker directory with the next site and with
            # tests/acceptance, and a worker left in its warm shutdown would take their
            # tasks and hold their database.
            for process in reversed(processes):
                sites.stop(process)
            # The demo's worker logs to example/var/, which the next site overwrites.
            worker_log = ROOT / "example" / "var" / "demo-worker.log"
            if server == "asgi" and worker_log.exists():
                shutil.copyfile(worker_log, log_path.with_suffix(".worker.log"))


class Proxy:
    """A TCP proxy in front of the site whose connections a test can cut, like a network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[bytes] = []
        self._connections: list[socket.socket] = []
        self._refuse_until = 0.0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, request: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if request:
                    self.requests.append(data)
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self, down_for: float) -> None:
        """Drop every open connection and refuse new ones for ``down_for`` seconds."""
        self._refuse_until = time.monotonic() + down_for
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def close(self) -> None:
        self._server.close()
        self.cut(0)
