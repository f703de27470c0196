"""Read-only queries for operators: task lists by page, counts by state, workers.

Lists use keyset pagination on ``(updated_at, task_id)`` and counts are bounded by
time, so none of them scans or counts the whole table.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q

from .. import conf
from ..records import TaskRecord
from . import _record, sync

#: Where a page ended: the ``(updated_at, task_id)`` of its last task.
Cursor = tuple[datetime, str]

#: The windows :func:`counts` reports, newest first.
WINDOWS: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a list shows; ``None`` matches everything."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    owner_id: Any = None
    since: datetime | None = None
    until: datetime | None = None

    def q(self) -> Q:
        where = Q()
        for field in ("state", "name", "queue", "owner_id"):
            value = getattr(self, field)
            if value is not None:
                where &= Q(**{field: value})
        if self.since is not None:
            where &= Q(updated_at__gte=self.since)
        if self.until is not None:
            where &= Q(updated_at__lt=self.until)
        return where


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    tasks: list[TaskRecord]
    #: Pass to :func:`page` for the next page; ``None`` on the last one.
    next: Cursor | None


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStatus:
    hostname: str
    pid: int
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    active: int
    reserved: int
    #: Heartbeating within its own ``LOST_AFTER`` and not stopped.
    alive: bool

    @property
    def status(self) -> str:
        """``alive``, ``stopped`` (said goodbye) or ``silent`` (its heartbeats stopped)."""
        if self.alive:
            return "alive"
        return "stopped" if self.stopped_at else "silent"


def _alias() -> str:
    return conf.get().DATABASE


def page(where: TaskFilter, limit: int, after: Cursor | None = None) -> Page:
    """Up to ``limit`` tasks matching ``where``, most recently updated first."""
    from ..models import Task

    sync()  # this process's own buffered writes belong in the list
    rows = Task.objects.using(_alias()).filter(where.q())
    if after is not None:
        at, task_id = after
        rows = rows.filter(Q(updated_at__lt=at) | Q(updated_at=at, task_id__lt=task_id))
    # One row more than asked tells whether another page exists, without a COUNT.
    found = list(rows.order_by("-updated_at", "-task_id")[: limit + 1])
    tasks = [_record(r) for r in found[:limit]]
    more = len(found) > limit
    return Page(tasks, (tasks[-1].updated_at, tasks[-1].id) if more else None)


def counts(now: datetime) -> dict[str, dict[str, int]]:
    """Tasks updated in each of :data:`WINDOWS` before ``now``, by state: one query."""
    from ..models import Task

    widest = max(WINDOWS.values())
    per_window = {
        window: Count("pk", filter=Q(updated_at__gte=now - span))
        for window, span in WINDOWS.items()
    }
    rows = list(
        Task.objects.using(_alias())
        .filter(updated_at__gte=now - widest, updated_at__lte=now)
        .values("state")
        .annotate(**per_window)
        .order_by("state")
        .values_list("state", *WINDOWS)
    )
    return {
        window: {row[0]: row[i] for row in rows if row[i]}
        for i, window in enumerate(WINDOWS, start=1)
    }


def workers(now: datetime) -> list[WorkerStatus]:
    """Every worker with a heartbeat row, most recently seen first."""
    from ..models import Worker

    rows = Worker.objects.using(_alias()).order_by("-last_seen", "hostname")
    return [worker_status(w, now) for w in rows]


def worker_status(row: Any, now: datetime) -> WorkerStatus:
    """A ``Worker`` row as a frozen status, judged at ``now``."""
    return WorkerStatus(
        hostname=row.hostname,
        pid=row.pid,
        started_at=row.started_at,
        last_seen=row.last_seen,
        stopped_at=row.stopped_at,
        active=row.active,
        reserved=row.reserved,
        alive=row.stopped_at is None and row.silent_after >= now,
    )
