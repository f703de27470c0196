"""What ``manage.py demo --check`` reports about one task."""

from __future__ import annotations

from typing import Any

from celery import states
from celery.result import AsyncResult

import tasktrail


def task_status(task_id: str) -> dict[str, Any]:
    """Celery's status plus tasktrail's record; raises :class:`tasktrail.TaskNotFound`.

    The check compares the two: ``AsyncResult`` must agree with tasktrail.
    """
    record = tasktrail.get(task_id)
    error = record.error
    return {
        "task_id": task_id,
        "status": AsyncResult(task_id).status,
        "name": record.name,
        "state": record.state,
        "phase": record.phase,
        "attempt": record.attempt,
        "retries_left": record.retries_left,
        "progress": record.progress and record.progress.as_json(),
        "result": record.result if record.state == states.SUCCESS else None,
        "error": None if error is None else {"type": error.type, "message": error.message},
    }
