"""A real Celery worker process (prefork, 2 children) on Redis and the test database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

import tasktrail
from tasktrail.records import TaskRecord
from tests import workers
from tests.conftest import IN_CI, require

ROOT = workers.ROOT
ARTIFACTS = ROOT / "artifacts"
WORKER_PYTHONPATH = workers.PYTHONPATH


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    from tests import brokers

    require("Redis", "127.0.0.1", 6379)
    if not brokers.is_redis(settings.CELERY_BROKER_URL):
        require("RabbitMQ", "127.0.0.1", 5672)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        require("PostgreSQL", "127.0.0.1", 5432)
    elif IN_CI:
        pytest.fail("integration tests run on PostgreSQL in CI: set TT_DB=postgres")
    yield
    brokers.remove_vhost()


@pytest.fixture(scope="session")
def django_db_setup(services: None, django_db_setup: None) -> None:
    """Check services before pytest-django tries to create the test database."""


@pytest.fixture(scope="session", autouse=True)
def _own_spool(django_db_setup: None) -> Iterator[None]:
    """Spool files left by an earlier run belong to its dropped test database: a worker
    of this run must not write them here, nor this run's into the next one's."""
    from tasktrail.store import spool

    shutil.rmtree(spool.directory(), ignore_errors=True)
    yield
    shutil.rmtree(spool.directory(), ignore_errors=True)


#: The session's worker processes, once started (a test that cuts the whole fleet off
#: pauses them: tests/integration/test_lost.py).
SESSION_WORKERS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(scope="session")
def worker(django_db_setup: None, django_db_blocker: object) -> Iterator[subprocess.Popen[bytes]]:
    """The run's one worker on the default queue. tests/channels and tests/tasks import
    this fixture, and pytest keeps a session fixture's value per module that defines it:
    each import started a worker of its own, alive to the end of the run. Two workers
    on one queue broke every test that counts on the pool's two processes (CI,
    2026-12-02: a task "waiting behind busy processes" started at once, on the other
    worker). So a second definition reuses the running worker."""
    if SESSION_WORKERS:
        yield SESSION_WORKERS[0]
        return
    from tests.testapp.celeryapp import app

    log = ARTIFACTS / "integration-worker.log"
    with workers.running(app, "itest@%h", log, workers.environment(), concurrency=2) as proc:
        SESSION_WORKERS.append(proc)
        try:
            yield proc
        finally:
            SESSION_WORKERS.remove(proc)


def wait_for(
    task_id: str, predicate: Callable[[TaskRecord], bool], timeout: float = 20
) -> TaskRecord:
    """Poll the store until the task's record satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    last: TaskRecord | None = None
    while time.monotonic() < deadline:
        try:
            last = tasktrail.get(task_id)
        except tasktrail.TaskNotFound:
            last = None
        if last is not None and predicate(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never matched; last record: {last}")


#: ``application_name`` of the PostgreSQL sessions of every worker a test starts.
WORKER_APPNAME = "tasktrail-test-worker"

# Timings of the workers fault tests start: LOST within LOST_AFTER plus a few seconds.
FAULT_LOST_AFTER = 3.0
FAULT_ENV = {"TT_LOST_AFTER": str(FAULT_LOST_AFTER), "TT_HEARTBEAT_INTERVAL": "0.5"}


class WorkerProcess:
    """A worker a test may kill: its own hostname and queue, and a process group of its own."""

    def __init__(
        self,
        app: Any,
        hostname: str,
        queue: str,
        env: dict[str, str],
        pool: str = "prefork",
        concurrency: int = 1,
        args: tuple[str, ...] = (),
    ) -> None:
        from django.db import connection

        self.app = app
        self.hostname = hostname
        self.queue = queue
        (ARTIFACTS / "workers").mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / "workers" / f"{self.hostname}.log"
        self._log = self.log_path.open("wb")
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "TT_DB_NAME": str(connection.settings_dict["NAME"]),
            "PYTHONPATH": WORKER_PYTHONPATH,
            # Names the worker's PostgreSQL sessions, so a fault test ends only its own.
            "PGAPPNAME": WORKER_APPNAME,
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.testapp", "worker", f"--pool={pool}",
             f"--concurrency={concurrency}", "--loglevel=INFO", f"--hostname={self.hostname}",
             f"--queues={queue}", "--without-gossip", "--without-mingle", "--without-heartbeat",
             *args],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_until_ready(self, timeout: float = 60) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.hostname} exited; see {self.log_path}")
            if self.app.control.ping(destination=[self.hostname], timeout=0.5):
                return self
        pytest.fail(f"worker {self.hostname} did not answer a ping within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the main process and its pool processes at once: nothing can report."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def start_worker(django_db_setup: None) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers for one test (fault timings unless ``env`` says otherwise); all stop after."""
    from tests.testapp.celeryapp import app

    started: list[WorkerProcess] = []

    def start(
        name: str,
        queue: str,
        env: dict[str, str] | None = None,
        hostname: str = "",
        control: Any = app,
        pool: str = "prefork",
        concurrency: int = 1,
        args: tuple[str, ...] = (),
    ) -> WorkerProcess:
        """``control`` is the app that reaches the worker's broker, to ping it; ``args``
        are more ``celery worker`` options (``--max-tasks-per-child=5``)."""
        hostname = hostname or f"{name}-{uuid.uuid4().hex[:8]}@tests"
        env = {**FAULT_ENV, **(env or {})}
        process = WorkerProcess(control, hostname, queue, env, pool, concurrency, args)
        started.append(process)
        return process.wait_until_ready()

    yield start
    for process in started:
        process.stop()


def unique_queue(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"
