"""``manage.py demo --check``: run every scenario in a real worker and verify its outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from celery import states
from celery.result import AsyncResult
from celery.utils.nodenames import host_format

import tasktrail
from tasktrail.models import Worker

from . import django_tasks, scenarios
from .processes import Process
from .status import task_status

POLL_SECONDS = 0.1
Status = dict[str, Any]


def _state_is(status: Status, expected: str) -> list[str]:
    return [] if status["state"] == expected else [f"expected {expected}, got {status['state']}"]


def _send_email(status: Status, trail: list[str]) -> list[str]:
    problems = _state_is(status, states.SUCCESS)
    if status["attempt"] < 2:
        problems.append(f"expected more than 1 attempt, got {status['attempt']}")
    if states.RETRY not in trail:
        problems.append("no RETRY in its history")
    return problems


def _build_report(status: Status, trail: list[str]) -> list[str]:
    problems = _state_is(status, states.SUCCESS)
    percent = (status["progress"] or {}).get("percent")
    if percent != 100:
        problems.append(f"expected progress 100%, got {percent}")
    return problems


def _always_fails(status: Status, trail: list[str]) -> list[str]:
    problems = _state_is(status, states.FAILURE)
    error = status["error"] or {}
    if error.get("type") != "RuntimeError" or "on purpose" not in error.get("message", ""):
        problems.append(f"expected RuntimeError '... on purpose ...', got {error or 'no error'}")
    return problems


def _slow_task(status: Status, trail: list[str]) -> list[str]:
    return _state_is(status, states.REVOKED)


EXPECTATIONS: dict[str, Callable[[Status, list[str]], list[str]]] = {
    "send_email": _send_email,
    "build_report": _build_report,
    "always_fails": _always_fails,
    "slow_task": _slow_task,
    **django_tasks.EXPECTATIONS,
}


def _record(task_id: str) -> tasktrail.TaskRecord | None:
    try:
        return tasktrail.get(task_id)
    except tasktrail.TaskNotFound:
        return None


def _wait(ids: dict[str, str], timeout: float, worker: Process) -> list[str]:
    """Poll until every task is done, revoking the slow one once it runs."""
    deadline = time.monotonic() + timeout
    revoked = False
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return [f"the worker exited with code {worker.returncode}"]
        records = {name: _record(task_id) for name, task_id in ids.items()}
        slow = records["slow_task"]
        if not revoked and slow is not None and slow.phase == "running":
            # Revoked once running, to show that terminate stops a started
            # task; by then the worker also listens for broadcasts.
            AsyncResult(ids["slow_task"]).revoke(terminate=True)
            revoked = True
        if all(record is not None and record.ready for record in records.values()):
            return []
        time.sleep(POLL_SECONDS)
    return [f"not every task finished within {timeout:g} s"]


def _outcome(status: Status) -> str:
    if status["error"]:
        return f"error {status['error']['type']}: {status['error']['message']}"
    parts = []
    if status["progress"] and status["progress"]["percent"] is not None:
        parts.append(f"progress {status['progress']['percent']:.0f}%")
    if status["state"] == states.SUCCESS:
        parts.append(f"result {json.dumps(status['result'])}")
    return ", ".join(parts)


def _report(name: str, task_id: str) -> tuple[list[str], list[str]]:
    """Lines describing the task, and what differs from what was expected."""
    status = task_status(task_id)
    trail = [t.state for t in tasktrail.history(task_id)]
    problems = EXPECTATIONS[name](status, trail)
    if status["status"] != status["state"]:
        problems.append(f"AsyncResult says {status['status']}, tasktrail says {status['state']}")
    verdict = "ok" if not problems else "UNEXPECTED: " + "; ".join(problems)
    lines = [
        f"{name:<13} {status['state']:<8} attempts={status['attempt']}  {_outcome(status)}  "
        f"[{verdict}]",
        f"{'':<13} history: {' > '.join(trail)}",
    ]
    return lines, [f"{name}: {problem}" for problem in problems]


def run(
    write: Callable[[str], Any], queue: str, timeout: float, worker: Process, sent: list[str]
) -> list[str]:
    """Start every scenario on ``queue``, wait for the outcomes; return the problems found.

    ``sent`` receives each task's id as it is sent, for :func:`clean_up`.
    """
    ids = {}
    for name in EXPECTATIONS:
        ids[name] = scenarios.start(name, queue=queue).id
        sent.append(ids[name])
    problems = _wait(ids, timeout, worker)
    for name, task_id in ids.items():
        lines, found = _report(name, task_id)
        for line in lines:
            write(line)
        problems += found
    return problems


def clean_up(sent: list[str], hostname: str) -> None:
    """Forget the check's tasks (Celery's ``AsyncResult.forget``: record and history) and
    its worker's heartbeat row, so the demo's dashboard shows only what its user did."""
    for task_id in sent:
        AsyncResult(task_id).forget()
    Worker.objects.filter(hostname=host_format(hostname)).delete()
