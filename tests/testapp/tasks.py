"""Tasks the integration tests run in a real worker: one per behaviour under test."""

import time
from typing import Any

from celery import shared_task

import tasktrail


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task
def noop() -> None:
    return None


@shared_task(bind=True, max_retries=3)
def flaky(self: Any, fail_times: int, countdown: float = 0.2) -> str:
    if self.request.retries < fail_times:
        try:
            raise ConnectionError(f"attempt {self.request.retries + 1} failed")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=countdown) from exc
    return f"ok after {self.request.retries + 1} attempts"


@shared_task
def boom(message: str) -> None:
    raise ValueError(message)


@shared_task
def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@shared_task
def reports_progress(steps: int, pause: float = 0.05) -> int:
    for i in range(1, steps + 1):
        time.sleep(pause)
        tasktrail.progress(i, steps, f"step {i} of {steps}")
    return steps


@shared_task(bind=True)
def celery_progress_style(self: Any, steps: int) -> str:
    for i in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"current": i, "total": steps})
        time.sleep(0.05)
    return "done"


@shared_task
def returns_set() -> Any:
    return {1, 2, 3}


@shared_task
def returns_huge(size: int) -> str:
    return "x" * size
