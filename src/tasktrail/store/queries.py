"""Read-only queries for operators: task lists by page, workers.

Lists use keyset pagination on ``(updated_at, task_id)``, served by the index
``tasktrail_task_updated`` read backwards, so no page counts or sorts the whole table.
A state filter for tasks not finished or unsuccessful has a partial index of its own
(:meth:`TaskFilter.indexed`). Any other filter (name, queue, owner, ``SUCCESS``) is
checked row by row along the index, at most :data:`SCAN` rows per page: a page short of
matches ends where the scan stopped, and its cursor continues the search from there.
(Counts by state and other aggregates: :mod:`tasktrail.store.overview`.)

Ordered by last update, a task that changes while someone pages moves to the top: it
is never listed twice, but a later page misses it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Q, QuerySet

from .. import ids, states
from ..records import TaskRecord
from . import names as _names
from .db import alias as _alias
from .db import tasks as _tasks
from .rows import record as _record
from .write import sync

#: Where a page ended: the ``(updated_at, task_id)`` of its last task.
Cursor = tuple[datetime, str]

#: Most rows a filtered page examines (about 50 ms of index scan on PostgreSQL).
SCAN = 50_000


#: Whole numbers a query may carry (a limit, a batch, a user id): PostgreSQL's
#: ``bigint`` and SQLite's ``INTEGER`` both hold 64 bits, signed.
BIGINT_MAX = 2**63 - 1
#: The datetimes a filter or cursor may hold. Python's (and so SQLite's text) range is
#: years 1 to 9999; a day less at each end keeps any time zone's view of the moment
#: inside it (SQLite stores UTC, pages print local time).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def storable(moment: datetime) -> bool:
    """Whether every database, and every time zone's view of it, can hold ``moment``."""
    if moment.tzinfo is None:
        return False
    try:
        return EARLIEST <= moment <= LATEST
    except OverflowError:
        return False


def format_cursor(cursor: Cursor) -> str:
    return f"{cursor[0].isoformat()},{cursor[1]}"


def parse_cursor(text: str) -> Cursor:
    """The cursor :func:`format_cursor` wrote; ``ValueError`` for anything else."""
    # An ISO timestamp holds no comma, so the first one ends it; the id may hold more.
    at, _, task_id = text.partition(",")
    moment = datetime.fromisoformat(at)
    if not ids.valid(task_id) or not storable(moment):
        raise ValueError(f"bad cursor {text[:80]!r}")
    return moment, task_id


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a list shows; ``None`` matches everything.

    ``name`` and ``queue`` match by part, case-insensitively, through the table of known
    names (:mod:`.names`): :meth:`resolved` turns them into the exact values to look
    for, so the task table sees ``name IN (...)``. ``worker``, ``error`` (the error's
    type or message) and ``arguments`` (args or kwargs as JSON text) match by part on the
    rows the bounded scan reads.
    """

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    owner_id: Any = None
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None
    arguments: str | None = None
    #: The known names and queues ``name`` and ``queue`` matched (:meth:`resolved`).
    names: tuple[str, ...] | None = None
    queues: tuple[str, ...] | None = None

    def resolved(self) -> TaskFilter:
        """This filter with ``name`` and ``queue`` looked up among the known ones."""
        names, queues = self.names, self.queues
        if self.name is not None and names is None:
            names = tuple(_names.matching("name", self.name))
        if self.queue is not None and queues is None:
            queues = tuple(_names.matching("queue", self.queue))
        if (names, queues) == (self.names, self.queues):
            return self
        return dataclasses.replace(self, names=names, queues=queues)

    def q(self) -> Q:
        return self.columns() & self.period()

    def columns(self) -> Q:
        """The conditions checked row by row (no index serves them in list order)."""
        where = Q()
        if self.state is not None:
            where &= Q(state=self.state)
        if self.owner_id is not None:
            where &= Q(owner_id=self.owner_id)
        resolved = self.resolved()
        if resolved.names is not None:
            where &= Q(name__in=resolved.names)
        if resolved.queues is not None:
            where &= Q(queue__in=resolved.queues)
        if self.worker is not None:
            where &= Q(worker__icontains=self.worker)
        if self.error is not None:
            where &= Q(error_message__icontains=self.error) | Q(error_type__icontains=self.error)
        if self.arguments is not None:
            where &= Q(args__icontains=self.arguments) | Q(kwargs__icontains=self.arguments)
        return where

    def _others(self) -> bool:
        """Whether anything but the state and the period filters."""
        parts = (self.name, self.queue, self.worker, self.owner_id, self.error, self.arguments)
        return any(p is not None for p in parts)

    def indexed(self) -> Q | None:
        """The condition of a partial index that serves this filter in list order, if
        one does: a state filter alone, for tasks not finished (``WHERE rank < 90``)
        or failed (``WHERE state IN (...)``). Such a page is complete, not scanned."""
        if self.state is None or self._others():
            return None
        from ..models import UNFINISHED, UNSUCCESSFUL

        if not states.is_done(self.state):
            return UNFINISHED
        return UNSUCCESSFUL if self.state in states.UNSUCCESSFUL else None

    def period(self) -> Q:
        """The conditions the ``updated_at`` index serves."""
        where = Q()
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
    #: The page is short because its scan stopped after :data:`SCAN` rows, not
    #: because nothing older matches: ``next`` searches on.
    scan_stopped: bool = False


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


def _older(rows: QuerySet[Any], after: Cursor | None) -> QuerySet[Any]:
    if after is None:
        return rows
    at, task_id = after
    # The redundant ``updated_at <= at`` is what an index can range over; the OR alone
    # made PostgreSQL scan everything older (3.3 s for a later page at 10 M rows).
    older = Q(updated_at__lt=at) | Q(updated_at=at, task_id__lt=task_id)
    return rows.filter(Q(updated_at__lte=at) & older)


def _not_older(rows: QuerySet[Any], end: Cursor) -> QuerySet[Any]:
    at, task_id = end
    return rows.filter(
        Q(updated_at__gte=at) & (Q(updated_at__gt=at) | Q(updated_at=at, task_id__gte=task_id))
    )


def _newest_first(rows: QuerySet[Any]) -> QuerySet[Any]:
    return rows.order_by("-updated_at", "-task_id")


def _scan_end(where: TaskFilter, after: Cursor | None, scan: int) -> Cursor | None:
    """The key of the ``scan``-th row a filtered page would examine, if there are that
    many: read from the index alone, without the filter."""
    rows = _older(_tasks().filter(where.period()), after)
    end = list(_newest_first(rows).values_list("updated_at", "task_id")[scan - 1 : scan])
    return end[0] if end else None


def page(where: TaskFilter, limit: int, after: Cursor | None = None, scan: int = SCAN) -> Page:
    """Up to ``limit`` tasks matching ``where``, most recently updated first."""
    sync()  # this process's own buffered writes belong in the list
    where = where.resolved()
    rows = _older(_tasks().filter(where.q()), after)
    served = where.indexed()
    if served is not None:
        rows = rows.filter(served)
    end = _scan_end(where, after, scan) if where.columns() and served is None else None
    if end is not None:
        rows = _not_older(rows, end)
    # One row more than asked tells whether another page exists, without a COUNT.
    found = list(_newest_first(rows)[: limit + 1])
    tasks = [_record(r) for r in found[:limit]]
    if len(found) > limit:
        return Page(tasks, (tasks[-1].updated_at, tasks[-1].id))
    return Page(tasks, end, scan_stopped=end is not None)


def newer(
    where: TaskFilter, since: Cursor, limit: int, subset: Q | None = None
) -> list[TaskRecord]:
    """Up to ``limit`` tasks matching ``where`` (and ``subset``, a named subset such
    as ``models.RUNNING``) updated after ``since`` (a page's or a stream's newest
    key), newest first: what a live list adds or moves to its top. A range scan of
    ``tasktrail_task_updated`` over what changed since, however large the table."""
    sync()
    at, task_id = since
    later = Q(updated_at__gt=at) | Q(updated_at=at, task_id__gt=task_id)
    rows = _tasks().filter(Q(updated_at__gte=at) & later, subset or Q())
    rows = rows.filter(where.resolved().q())
    return [_record(r) for r in _newest_first(rows)[:limit]]


def recent(scan: int = SCAN) -> Q:
    """The newest ``scan`` tasks (all of them when there are fewer): where a search that
    no index serves in list order stays, so it reads at most that many rows."""
    end = _scan_end(TaskFilter(), None, scan)
    return Q() if end is None else Q(updated_at__gte=end[0])


def admin_search(term: str, workers: bool) -> Q:
    """The admin's search box: a state (by its name), or part of a known task name or,
    with ``workers`` (for those who may see them), of a worker's hostname; among the
    newest :data:`SCAN` tasks, as the dashboard's first page of a search."""
    from ..models import Worker

    where = Q(name__in=_names.matching("name", term))
    if term.upper() in states.LISTED_STATES:
        where |= Q(state=term.upper())
    if workers:
        hosts = Worker.objects.using(_alias()).filter(hostname__icontains=term)
        where |= Q(worker__in=list(hosts.values_list("hostname", flat=True)[: _names.MAX_MATCHES]))
    return where & recent()


def group(group_id: str, limit: int = 100) -> list[TaskRecord]:
    """Up to ``limit`` tasks of a group, by id (partial index ``tasktrail_task_grouped``)."""
    sync()  # as page(): this process's own buffered writes belong in the list
    # The exclude repeats the index's condition word for word, which SQLite needs to
    # use a partial index (PostgreSQL proves it from the equality).
    rows = _tasks().filter(group_id=group_id).exclude(group_id="")
    rows = rows.order_by("task_id")[:limit]
    return [_record(r) for r in rows]


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


#: Below this many rows (by the planner's estimate) a list is counted exactly.
EXACT_COUNT_BELOW = 10_000


def count(rows: QuerySet[Any]) -> int:
    """How many rows ``rows`` holds: exact for small results, PostgreSQL's estimate for
    large ones, where ``COUNT(*)`` would scan millions of rows (0.7 s at 10 M tasks)."""
    estimate = _estimate(rows)
    return estimate if estimate is not None and estimate >= EXACT_COUNT_BELOW else rows.count()


def _estimate(rows: QuerySet[Any]) -> int | None:
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        if not rows.query.where:
            table = rows.model._meta.db_table
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            return int(cursor.fetchone()[0])  # -1 before the first ANALYZE
        try:
            sql, params = rows.query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing (``.none()``)
            return 0
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])
