"""tasktrail's Python API: read a task's record, report progress from inside one."""

from __future__ import annotations

import math
from typing import Any

from .exceptions import PayloadError
from .records import TaskRecord, Transition


def get(task_id: str) -> TaskRecord:
    """The current record of ``task_id``; raises :class:`tasktrail.TaskNotFound` if unknown."""
    from . import store

    return store.get(task_id)


def history(task_id: str) -> list[Transition]:
    """Every accepted state change of ``task_id``, oldest first."""
    from . import store

    return store.history(task_id)


def recent(limit: int = 50, **filters: Any) -> list[TaskRecord]:
    """The most recently updated tasks, e.g. ``recent(state="FAILURE", name="app.send")``."""
    from . import store

    return store.recent(limit, **filters)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"progress {name} must be a finite number, got {value!r}")
    return float(value)


def progress(current: float, total: float | None = None, message: str = "", **meta: Any) -> None:
    """Report how far the running task has come.

    Call from inside a Celery task (also from threads it starts, if they run while
    the task does). Cheap to call often: updates are folded in memory and the
    latest value is written within ``FLUSH_INTERVAL``, always before the outcome.
    """
    from celery import current_task

    from .celery import recorder

    task = current_task
    if not task or not task.request.id:
        raise RuntimeError("tasktrail.progress() must be called while a Celery task runs")
    recorder.progress(
        task.request.id,
        task.request,
        _number("current", current),
        None if total is None else _number("total", total),
        str(message),
        meta,
    )
