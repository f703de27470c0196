"""The child processes of ``manage.py demo``: a Celery worker and a web server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

EXAMPLE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

Process = subprocess.Popen[bytes]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The children import the project by name whatever the working directory,
    # with the example's settings even if the shell exported others.
    env["DJANGO_SETTINGS_MODULE"] = "exampleproject.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE_DIR), env.get("PYTHONPATH")]))
    return env


def _spawn(args: list[str], output: IO[bytes] | None) -> Process:
    # A session of its own: Ctrl-C reaches only manage.py, which stops the
    # children in order, and a worker's pool processes can be killed as a group.
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        env=_env(),
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )


def start_worker(
    hostname: str, queue: str | None = None, output: IO[bytes] | None = None
) -> Process:
    args = ["celery", "-A", "exampleproject", "worker", "--pool=prefork", "--concurrency=2"]
    args += ["--loglevel=info", f"--hostname={hostname}"]
    if queue:
        args.append(f"--queues={queue}")
    return _spawn(args, output)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As servers bind: connections of a previous run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_after(port: int, tries: int = 20) -> int | None:
    """The first free port after ``port``, to suggest when ``port`` is taken."""
    return next((p for p in range(port + 1, port + 1 + tries) if port_is_free(p)), None)


def start_web(port: int) -> Process:
    # No access log: every open page polls twice a second per task. Warnings only: its
    # "Uvicorn running on ..." would otherwise be printed after the demo's own lines.
    args = ["uvicorn", "exampleproject.asgi:application", "--host", HOST, "--port", str(port)]
    return _spawn([*args, "--no-access-log", "--lifespan", "off", "--log-level", "warning"], None)


def wait_listening(process: Process, port: int, timeout: float = 20.0) -> bool:
    """Whether ``process`` accepts connections on ``port`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return True
    return False


def stop(process: Process, grace: float) -> None:
    """Ask ``process`` to stop (SIGTERM); kill its whole group after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        # The group leader is still alive (not reaped), so its group id is ours.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
