"""Rows of the task table as the values handed out: a :class:`TaskRecord`, or the task
as Celery's result backend protocol describes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from .. import states
from ..records import Progress, TaskError, TaskRecord


def record(row: Any) -> TaskRecord:
    progress = None
    if row.progress_current is not None:
        progress = Progress(
            current=row.progress_current,
            total=row.progress_total,
            message=row.progress_message,
            meta=row.meta or {},
        )
    error = None
    if row.error_type:
        error = TaskError(row.error_type, row.error_message, row.traceback or None)
    return TaskRecord(
        id=row.task_id,
        name=row.name,
        queue=row.queue,
        state=row.state,
        attempt=row.attempt,
        max_retries=row.max_retries,
        args=row.args,
        kwargs=row.kwargs,
        result=row.result,
        error=error,
        progress=progress,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        root_id=row.root_id,
        group_id=row.group_id,
        worker=row.worker,
        worker_pid=row.worker_pid,
        sent_at=row.sent_at,
        received_at=row.received_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        next_retry_at=row.next_retry_at,
        expires_at=row.expires_at,
        children=_children(row),
        show_result=row.show_result,
    )


def _children(row: Any) -> tuple[str, ...]:
    """The tasks this one sent; a retry is sent as a child of the task it retries, and
    is the task itself, not a child."""
    found = filter(None, map(_first_id, row.children or []))
    return tuple(child for child in found if child != row.task_id)


def _first_id(value: Any) -> str | None:
    """Celery stores a child as ``[[id, parent], None]``: the first string is its id."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return next(filter(None, map(_first_id, value)), None)
    return None


class CeleryRow(NamedTuple):
    """The columns of the task row :func:`celery_meta` reads, and nothing more: what
    Celery's point read (:mod:`tasktrail.store.point`) selects, named as the model's
    fields, so :func:`celery_meta` takes a model instance as well."""

    task_id: str
    state: str
    ignore_result: bool | None
    result: Any
    traceback: str
    children: Any
    finished_at: datetime | None
    name: str
    args: Any
    kwargs: Any
    worker: str
    attempt: int
    queue: str
    parent_id: str
    group_id: str


def celery_meta(row: Any) -> dict[str, Any]:
    """The task as Celery's result backend protocol describes it: in Celery's states
    (:func:`tasktrail.states.celery_state`), with no result where Celery would have none.

    ``row`` is a :class:`CeleryRow` or a model instance."""
    status = states.celery_state(row.state, bool(row.ignore_result))
    # What Celery reads as PENDING it has not stored: no result, no traceback, no date.
    stored = status != states.PENDING
    return {
        "task_id": row.task_id,
        "status": status,
        "result": row.result if stored else None,
        "traceback": (row.traceback or None) if stored else None,
        "children": row.children or [],
        "date_done": row.finished_at if stored else None,
        "name": row.name or None,
        "args": row.args,
        "kwargs": row.kwargs,
        "worker": row.worker or None,
        "retries": row.attempt - 1,
        "queue": row.queue or None,
        "parent_id": row.parent_id or None,
        "group_id": row.group_id or None,
    }
