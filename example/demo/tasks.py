"""The demo's scenarios: plain Celery tasks, nothing tasktrail-specific but progress()."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

import tasktrail


class MailServerBusy(ConnectionError):
    """A transient failure, the kind worth retrying."""


def _deliver(to: str, attempt: int, fail_times: int) -> None:
    """Stands in for an SMTP call; busy for the first ``fail_times`` attempts."""
    if attempt <= fail_times:
        raise MailServerBusy(f"mail server busy, {to} not sent (attempt {attempt})")


@shared_task(bind=True, max_retries=3)
def send_email(self: Any, to: str, fail_times: int = 2) -> dict[str, Any]:
    attempt = self.request.retries + 1
    try:
        _deliver(to, attempt, fail_times)
    except MailServerBusy as exc:
        raise self.retry(exc=exc, countdown=1) from exc
    return {"to": to, "attempts": attempt}


@shared_task
def build_report(rows: int = 10, pause: float = 0.3) -> dict[str, Any]:
    """Reports progress once per row, so a page can show a moving bar."""
    for row in range(1, rows + 1):
        time.sleep(pause)
        tasktrail.progress(row, rows, f"row {row} of {rows}")
    return {"rows": rows, "total": rows * 42}


@shared_task
def always_fails() -> None:
    raise RuntimeError("always_fails failed on purpose: this is how a failure is recorded")


@shared_task
def slow_task(seconds: int = 60) -> str:
    """Sleeps in short steps, reporting progress, until done or revoked."""
    for second in range(seconds):
        tasktrail.progress(second, seconds, f"{seconds - second} s to go")
        time.sleep(1)
    return f"slept {seconds} s"
