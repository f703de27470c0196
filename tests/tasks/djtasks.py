"""django.tasks tasks the tests send to a real Celery worker: one per behaviour."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.tasks import TaskContext, TaskResult, task
from django.tasks.signals import task_finished, task_started

import tasktrail


@task
def add(x: int, y: int) -> int:
    return x + y


@task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def exit_now() -> None:
    sys.exit(3)


@task
def not_json() -> Any:
    return object()


@task(takes_context=True)
def attempt_of(context: TaskContext) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id}


@task(max_retries=2, autoretry_for=(ConnectionError,), retry_backoff=0.1, retry_jitter=False)
def flaky(marker: str, fail_times: int) -> int:
    """Fails ``fail_times`` runs (counted in the file ``marker``), then returns the count."""
    path = Path(marker)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    if runs <= fail_times:
        raise ConnectionError(f"run {runs} failed")
    return runs


@task
def report(steps: int) -> str:
    for i in range(1, steps + 1):
        tasktrail.progress(i, steps, f"step {i}")
        time.sleep(0.2)
    return "reported"


@task
def hold(marker: str, seconds: float) -> str:
    """Runs until ``marker`` exists, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"


#: Where the worker's receivers of django.tasks' signals write what they saw, a JSON
#: line each: the signal, the task's id and status, and the exception being handled.
SIGNALS_LOG = Path(os.environ.get("TT_TMP", tempfile.gettempdir())) / "djtasks-signals.jsonl"


def _seen(signal: str) -> Any:
    def receiver(sender: type, task_result: TaskResult, **_: Any) -> None:
        handled = sys.exc_info()[0]
        line = {
            "signal": signal,
            "sender": f"{sender.__module__}.{sender.__qualname__}",
            "id": task_result.id,
            "status": str(task_result.status),
            "handling": handled.__name__ if handled else None,
            "pid": os.getpid(),
        }
        with SIGNALS_LOG.open("a") as f:
            f.write(json.dumps(line) + "\n")

    return receiver


for _name, _signal in (("started", task_started), ("finished", task_finished)):
    _signal.connect(_seen(_name), weak=False, dispatch_uid=f"tests.djtasks.{_name}")


def signals_seen(task_id: str) -> list[dict[str, Any]]:
    if not SIGNALS_LOG.exists():
        return []
    lines = (json.loads(line) for line in SIGNALS_LOG.read_text().splitlines() if line)
    return [line for line in lines if line["id"] == task_id]
