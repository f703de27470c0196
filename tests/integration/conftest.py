"""A real Celery worker process (prefork, 2 children) on Redis and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

import tasktrail
from tasktrail.records import TaskRecord
from tests.conftest import IN_CI, require

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="session")
def services() -> None:
    require("Redis", "127.0.0.1", 6379)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        require("PostgreSQL", "127.0.0.1", 5432)
    elif IN_CI:
        pytest.fail("integration tests run on PostgreSQL in CI: set TT_DB=postgres")


@pytest.fixture(scope="session")
def django_db_setup(services: None, django_db_setup: None) -> None:
    """Check services before pytest-django tries to create the test database."""


@pytest.fixture(scope="session")
def worker(django_db_setup: None, django_db_blocker: object) -> Iterator[subprocess.Popen[bytes]]:
    from django.db import connection

    from tests.testapp.celeryapp import app

    app.control.purge()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "integration-worker.log").open("wb")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TT_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.testapp", "worker", "--pool=prefork",
         "--concurrency=2", "--loglevel=INFO", "--hostname=itest@%h", "--without-gossip",
         "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_until_ready(app, proc)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _wait_until_ready(app: object, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"worker exited with {proc.returncode}; see artifacts/integration-worker.log"
            )
        if app.control.ping(timeout=0.5):  # type: ignore[attr-defined]
            return
    pytest.fail("worker did not answer a ping within 60 s")


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
