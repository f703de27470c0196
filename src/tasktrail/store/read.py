"""Point reads of the store: one task, a few, its history. Each lets this process's own
buffered writes for the task land first, so a process always reads its own writes."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from typing import Any

from .. import ids
from ..exceptions import TaskNotFound
from ..records import TaskRecord, Transition
from . import point, rows
from .db import alias, tasks
from .history import ORDER
from .write import chunks, settle, sync


def _row(task_id: str) -> Any:
    settle(task_id)
    return tasks().filter(task_id=task_id).first()


def get(task_id: str) -> TaskRecord:
    # An id the table cannot hold was never recorded: no query for it.
    if not ids.valid(task_id):
        raise TaskNotFound(str(task_id)[:300])
    row = _row(task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return rows.record(row)


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """What an access decision reads of a task, and nothing more: who sent it, and when
    it was first recorded (which tells it from a later task reusing its id)."""

    owner_id: Any
    first_seen: datetime
    #: ``first_seen`` is the time it was sent, which no later event changes.
    sent: bool


def identity(task_id: str) -> Identity | None:
    """The :class:`Identity` of ``task_id``, or ``None`` if unknown: one narrow
    primary-key read, the same whether or not the caller may see the task."""
    if not ids.valid(task_id):
        return None
    settle(task_id)
    found = (
        tasks()
        .filter(task_id=task_id)
        .values_list("owner_id", "sent_at", "received_at", "started_at", "updated_at")
        .first()
    )
    if found is None:
        return None
    owner_id, sent_at, *later = found
    first = sent_at or next(filter(None, later))
    return Identity(owner_id, first, sent_at is not None)


def get_many(task_ids: Collection[str]) -> dict[str, TaskRecord]:
    """The records of those of ``task_ids`` that are recorded, by id."""
    wanted = [task_id for task_id in task_ids if ids.valid(task_id)]
    for task_id in wanted:
        settle(task_id)
    return {
        row.task_id: rows.record(row)
        for chunk in chunks(wanted)
        for row in tasks().filter(task_id__in=chunk)
    }


def versions(task_ids: Collection[str]) -> dict[str, datetime]:
    """``updated_at`` of those of ``task_ids`` that are recorded: a cheap change check."""
    wanted = [task_id for task_id in task_ids if ids.valid(task_id)]
    found: dict[str, datetime] = {}
    for chunk in chunks(wanted):
        found.update(tasks().filter(task_id__in=chunk).values_list("task_id", "updated_at"))
    return found


def celery_meta(task_id: str) -> dict[str, Any] | None:
    """The task as Celery's result backend protocol describes it, or ``None``: only the
    columns it needs, in one narrow query (:mod:`.point`)."""
    if not ids.valid(task_id):
        return None
    settle(task_id)
    row = point.read(task_id)
    return None if row is None else rows.celery_meta(row)


def history(task_id: str) -> list[Transition]:
    """Every transition of ``task_id``, oldest first (:mod:`tasktrail.store.history`)."""
    from ..models import Transition as TransitionRow

    if not ids.valid(task_id):
        return []
    settle(task_id)
    # Operators' audit entries share the table; see tasktrail.store.audit.
    found = TransitionRow.objects.using(alias()).filter(task_id=task_id, action="")
    return [
        Transition(r.state, r.attempt, r.at, r.worker, r.detail or {})
        for r in found.order_by(*ORDER)
    ]


def recent(limit: int = 50, **filters: Any) -> list[TaskRecord]:
    """The most recently updated tasks, newest first, filtered by model fields."""
    sync()
    found = tasks().filter(**filters).order_by("-updated_at")[:limit]
    return [rows.record(r) for r in found]
