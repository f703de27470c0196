"""``manage.py demo``: the example site with a Celery worker, or ``--check`` it end to end."""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from kombu.utils.url import maybe_sanitize_url

from demo import check, processes
from exampleproject.celery import app

# The check's own queue: tasks waiting in the demo's queue cannot delay it. Not
# purged, so checks running at once do not eat each other's tasks.
CHECK_QUEUE = "demo-check"
CHECK_HOSTNAME = "demo-check@%h"
WORKER_LOG = processes.EXAMPLE_DIR / "var" / "demo-worker.log"
CHECK_WORKER_LOG = processes.EXAMPLE_DIR / "var" / "demo-check-worker.log"
WORKER_GRACE = 10.0
WEB_GRACE = 5.0
LOG_TAIL_LINES = 40
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
OPERATOR = "operator"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM stops the demo exactly like Ctrl-C.
    raise KeyboardInterrupt


def _setup() -> str:
    """Describe where tasks go and are recorded."""
    name = connection.settings_dict["NAME"]
    broker = maybe_sanitize_url(app.conf.broker_url)
    return f"database {connection.vendor} {name}, broker {broker}"


def _operator_password() -> str:
    """A staff account for the dashboard, with a new password every run: printed, so
    whoever started the demo (and no one else) can log in."""
    user, _ = get_user_model().objects.get_or_create(username=OPERATOR)
    password = secrets.token_urlsafe(9)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


class Command(BaseCommand):
    help = (
        "Run the tasktrail demo: a Celery worker and the web page at http://127.0.0.1:8000/. "
        "With --check, run every scenario once without the web server and verify the outcomes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="web server port (8000)")
        parser.add_argument(
            "--check", action="store_true", help="run each scenario, verify, exit 0 if all ok"
        )
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="--check: seconds to wait for outcomes"
        )

    def handle(self, *args: Any, port: int, check: bool, timeout: float, **options: Any) -> None:
        call_command("migrate", verbosity=0, interactive=False)
        signal.signal(signal.SIGTERM, _interrupt)
        if check:
            self._check(timeout)
        else:
            self._serve(port)

    def _serve(self, port: int) -> None:
        if not processes.port_is_free(port):
            other = processes.free_port_after(port) or port + 1
            raise CommandError(
                f"port {port} is in use; choose another: "
                f'make demo ARGS="--port {other}" (or: manage.py demo --port {other})'
            )
        # The worker's banner and log go to a file: on the terminal they would push the
        # URL and the password off the screen.
        with WORKER_LOG.open("wb") as log:
            worker = processes.start_worker("demo@%h", output=log)
            web = processes.start_web(port)
            try:
                self._run(worker, web, port)
            except KeyboardInterrupt:
                self.stdout.write(
                    f"\nStopping (waiting up to {WORKER_GRACE:g} s for running tasks)..."
                )
            finally:
                self._stop((web, WEB_GRACE), (worker, WORKER_GRACE))

    def _run(self, worker: processes.Process, web: processes.Process, port: int) -> None:
        if not processes.wait_listening(web, port):
            raise CommandError(f"the web server did not start on port {port}")
        site = f"http://{processes.HOST}:{port}"
        # Printed last, after both children are up: nothing scrolls it away.
        self.stdout.write(f"\n  {_setup()}\n  worker log: {WORKER_LOG}\n")
        self.stdout.write(self.style.SUCCESS(f"  tasktrail demo: {site}/"))
        self.stdout.write(
            f"  dashboard:      {site}/tasktrail/ "
            f"(log in as {OPERATOR}, password {_operator_password()})\n  Ctrl-C to stop.\n"
        )
        self.stdout.flush()  # now, also when the output is a pipe or a file
        while worker.poll() is None and web.poll() is None:
            time.sleep(0.5)
        if worker.poll() is not None:
            self.stderr.write(f"Last lines of the worker log:\n{_tail(WORKER_LOG)}")
            raise CommandError("the worker stopped unexpectedly")
        raise CommandError("the web server stopped unexpectedly")

    def _check(self, timeout: float) -> None:
        log_path = CHECK_WORKER_LOG
        self.stdout.write(f"tasktrail demo check: {_setup()}; worker log {log_path}")
        began = time.monotonic()
        with log_path.open("wb") as log:
            worker = processes.start_worker(CHECK_HOSTNAME, CHECK_QUEUE, log)
            ids: list[str] = []
            try:
                problems = check.run(self.stdout.write, CHECK_QUEUE, timeout, worker, ids)
            except KeyboardInterrupt:
                problems = ["interrupted"]
            finally:
                self._stop((worker, WORKER_GRACE))
                # The check's tasks and worker are not the newcomer's: gone from the
                # demo's dashboard once it is over (its output above says what they did).
                check.clean_up(ids, CHECK_HOSTNAME)
        elapsed = time.monotonic() - began
        if problems:
            self.stderr.write(f"Last lines of the worker log:\n{_tail(log_path)}")
            raise CommandError(f"demo check failed after {elapsed:.1f} s: " + "; ".join(problems))
        summary = f"ok: every scenario ended as expected ({elapsed:.1f} s)"
        self.stdout.write(self.style.SUCCESS(summary))

    def _stop(self, *children: tuple[processes.Process, float]) -> None:
        # Bounded, and not cut short by another Ctrl-C: no child is left behind.
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
        try:
            for child, grace in children:
                processes.stop(child, grace)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
