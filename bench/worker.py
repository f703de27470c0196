"""A real Celery worker in a subprocess (2 prefork processes by default), always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 2


def command(node: str, pool: str = "prefork", concurrency: int = CONCURRENCY) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.celeryapp",
        "worker",
        f"--pool={pool}",
        "-c",
        str(concurrency),
        "-l",
        "warning",
        "-n",
        f"{node}@%h",
    ]


@contextlib.contextmanager
def running(
    node: str, log: Path, pool: str = "prefork", concurrency: int = CONCURRENCY
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a worker; on exit stop it and every process it forked."""
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    with log.open("ab") as out:
        # A session of its own: Ctrl-C reaches the producer, which then stops the
        # worker in order (warm shutdown flushes buffered writes), and the whole
        # process group can be killed by its id if that fails.
        proc = subprocess.Popen(
            command(node, pool, concurrency),
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop(proc)


def _pythonpath() -> str:
    current = os.environ.get("PYTHONPATH")
    return f"{ROOT}{os.pathsep}{current}" if current else str(ROOT)


def stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Leftover pool processes share the worker's process group (its id is the pid).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
