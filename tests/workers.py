"""A real Celery worker process for tests: how it is started, found ready, and stopped.

One copy for the session's worker of tests/integration and the docs pages' workers
(tests/docs/test_samples.py): a worker of ``tests.testapp`` on the run's test database,
in a process group of its own, so stopping it stops its pool processes too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

import tasktrail

ROOT = Path(__file__).resolve().parents[1]
#: What worker processes import: the tests from the checkout, tasktrail from wherever this
#: run imported it (src/ in the dev install, site-packages in a nox session that installed
#: the wheel: a worker must not test the checkout's source instead of what was installed).
PYTHONPATH = os.pathsep.join([str(ROOT), str(Path(tasktrail.__file__).resolve().parents[1])])
#: A warm shutdown waits for running tasks; what still runs after this is killed.
GRACE = 20.0


def environment(*first: Path, **extra: str) -> dict[str, str]:
    """A worker's environment: ``tests.settings`` on the database this run created,
    importing from the directories ``first`` before the checkout; ``extra`` on top."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TT_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join([*map(str, first), PYTHONPATH]),
        **extra,
    }


def start(
    hostname: str,
    env: dict[str, str],
    log: IO[bytes],
    concurrency: int,
    options: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A prefork worker of ``tests.testapp`` (``options``: more ``celery worker`` options)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.testapp", "worker", "--pool=prefork",
         f"--concurrency={concurrency}", "--loglevel=INFO", f"--hostname={hostname}",
         "--without-gossip", "--without-mingle", *options],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_until_ready(
    app: Any,
    process: subprocess.Popen[bytes],
    log_path: Path,
    destination: str | None = None,
    timeout: float = 60,
) -> None:
    """Until the worker answers a ping (``destination``: that worker's; else any); the
    test fails if it exits first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}; see {log_path}")
        names = None if destination is None else [destination]
        if app.control.ping(destination=names, timeout=0.5):
            return
    pytest.fail(f"the worker did not answer a ping within {timeout:g} s; see {log_path}")


def stop(process: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """SIGTERM the worker's group (a warm shutdown), SIGKILL it after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running(
    app: Any,
    hostname: str,
    log_path: Path,
    env: dict[str, str],
    concurrency: int,
    options: Sequence[str] = (),
    destination: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker from a purged broker queue until the block ends, its output in
    ``log_path``; ready once ``destination`` (or any worker) answers a ping."""
    app.control.purge()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = start(hostname, env, log, concurrency, options)
        try:
            wait_until_ready(app, process, log_path, destination)
            yield process
        finally:
            stop(process)
