"""The scenarios the page and ``manage.py demo --check`` start, by name."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Task, current_app
from celery.result import AsyncResult

from . import django_tasks, tasks


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    task: Task[Any, Any]
    description: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


SCENARIOS: dict[str, Scenario | django_tasks.DjangoTaskScenario] = {
    "send_email": Scenario(
        tasks.send_email,
        "Fails twice (mail server busy), is retried after 1 s each time, then succeeds.",
        {"to": "ada@example.com"},
    ),
    "build_report": Scenario(tasks.build_report, "Reports progress for 3 s, returns a dict."),
    "always_fails": Scenario(tasks.always_fails, "Raises RuntimeError with a clear message."),
    "slow_task": Scenario(tasks.slow_task, "Runs for 60 s unless you revoke it."),
    **django_tasks.SCENARIOS,
}


def start(name: str, queue: str | None = None) -> AsyncResult[Any]:
    """Send scenario ``name`` to ``queue``, by default Celery's default queue."""
    scenario = SCENARIOS[name]
    queue = queue or current_app.conf.task_default_queue
    if isinstance(scenario, django_tasks.DjangoTaskScenario):
        return AsyncResult(scenario.send(queue))
    return scenario.task.apply_async(kwargs=scenario.kwargs, queue=queue)
