"""Aggregates for the operators' dashboard, each bounded whatever the table's size.

Designed for a task table of 10 M rows on PostgreSQL. Every query reads a bounded
time window through an index and stops after a fixed number of rows, so it costs the
same at 10 k and 10 M rows; none counts the whole table. Where a cap cut a window
short, the result says so (``exact=False``) instead of showing a wrong number.

Indexes (see ``tasktrail.models.Task.Meta``):

- ``tasktrail_task_updated`` ``(updated_at, task_id)``: :func:`summary`,
  :func:`throughput`, :func:`timings` (read backwards from ``now``).
- ``tasktrail_task_running`` (partial: running tasks): :func:`running`.
- ``tasktrail_task_unfinished`` ``(updated_at, task_id)`` (partial: not done, not
  lost): :func:`stuck`.
- ``tasktrail_task_unsuccessful`` ``(updated_at, task_id)`` (partial: failed, revoked,
  lost): :func:`lost`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Q

from .. import conf, states
from ..records import TaskRecord
from . import waits as _waits
from .db import alias as _alias
from .db import tasks as _tasks
from .rows import record as _record
from .sql import TASK_TABLE
from .write import sync

#: Most rows one aggregate reads: about 50 ms of index scan on PostgreSQL.
SAMPLE = 50_000
#: Most finished tasks the timing percentiles are computed from.
TIMING_SAMPLE = 5_000
#: Most tasks a list of the overview shows.
LIST_LIMIT = 20

#: The windows :func:`counts` reports, and the bucket each chart of them uses.
WINDOWS: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
BUCKETS: dict[str, timedelta] = {
    "hour": timedelta(minutes=1),
    "day": timedelta(minutes=30),
    "week": timedelta(hours=3),
}
#: Outcomes counted as failures in the failure rate.
FAILED = (states.FAILURE, states.LOST)


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """Tasks updated within a window, by state."""

    window: str
    by_state: dict[str, int]
    #: ``False`` when the window held more than :data:`SAMPLE` tasks: the numbers are
    #: those of the most recent :data:`SAMPLE`, a lower bound.
    exact: bool

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    finished: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


@dataclasses.dataclass(frozen=True, slots=True)
class Throughput:
    """Finished tasks per bucket over a window, oldest bucket first."""

    window: str
    bucket: timedelta
    buckets: list[Bucket]
    #: Buckets before this one were not counted (the window held more than
    #: :data:`SAMPLE` finished tasks); ``None`` when every bucket was.
    counted_from: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Queue wait (its last attempt's, :mod:`.waits`) and run time (started → finished)
    percentiles, in seconds, for one task name."""

    name: str
    count: int
    wait: dict[str, float | None]
    run: dict[str, float | None]


PERCENTILES = (50, 90, 99)


def _recent_sql(columns: str, where: str) -> str:
    """The most recent ``SAMPLE`` rows matching ``where``, newest first: a backward
    range scan of ``tasktrail_task_updated`` that stops at the cap."""
    return (
        f"SELECT {columns} FROM {TASK_TABLE} "
        f"WHERE updated_at >= %s AND updated_at <= %s{where} "
        "ORDER BY updated_at DESC LIMIT %s"
    )


def _run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connections[_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _at(moment: datetime) -> Any:
    return connections[_alias()].ops.adapt_datetimefield_value(moment)


#: The window :func:`counts` buckets by when no chart is drawn (any would do).
DEFAULT_WINDOW = "hour"


def counts(now: datetime) -> list[Counts]:
    """Tasks updated in each of :data:`WINDOWS` before ``now``, by state: one query."""
    return summary(DEFAULT_WINDOW, now)[0]


def throughput(window: str, now: datetime) -> Throughput:
    """Tasks finished per bucket in ``window`` (a :data:`WINDOWS` key), and how many failed."""
    return summary(window, now)[1]


def summary(window: str, now: datetime) -> tuple[list[Counts], Throughput]:
    """:func:`counts` and :func:`throughput` of ``window``, from one capped scan.

    The overview shows both, and each was a scan of :data:`SAMPLE` rows of its own: at
    10 M tasks on PostgreSQL 50 and 78 ms of a 225 ms page (bench/README.md). One scan of
    the latest :data:`SAMPLE` updated in the widest window, grouped by state and bucket,
    serves both: the windows nest, so a narrower one is complete when the sample also
    holds rows older than its start; a finished task is not updated again, so its
    ``updated_at`` is when it finished and says its bucket.
    """
    names = list(WINDOWS)
    starts = [now - WINDOWS[name] for name in names]
    seconds = int(BUCKETS[window].total_seconds())
    bucket = _bucket_sql(connections[_alias()].vendor)
    within = "".join(", SUM(CASE WHEN updated_at >= %s THEN 1 ELSE 0 END)" for _ in names[:-1])
    sql = (
        f"SELECT state, {bucket} AS b{within}, COUNT(*) "
        f"FROM ({_recent_sql('state, updated_at', '')}) recent GROUP BY state, b"
    )
    params = [seconds, *map(_at, starts[:-1]), _at(starts[-1]), _at(now), SAMPLE]
    # SUM of no rows is NULL on some databases: read as 0.
    rows = [(str(r[0]), int(r[1]), [int(n or 0) for n in r[2:]]) for r in _run(sql, params)]
    full = sum(within[-1] for *_, within in rows) >= SAMPLE
    return _counts(names, rows, full), _throughput(window, now, seconds, rows, full)


Sampled = list[tuple[str, int, list[int]]]


def _counts(names: list[str], rows: Sampled, full: bool) -> list[Counts]:
    """By window and state, from :func:`summary`'s rows ``(state, bucket, [n within
    each window])``; ``full``: the sample reached :data:`SAMPLE` rows."""
    by_window: list[dict[str, int]] = [defaultdict(int) for _ in names]
    for state, _, within in rows:
        for i, n in enumerate(within):
            by_window[i][state] += n
    sampled = sum(by_window[-1].values())
    result = []
    for name, found in zip(names, by_window, strict=True):
        total = sum(found.values())
        exact = not full or total < sampled
        result.append(Counts(name, {s: n for s, n in sorted(found.items()) if n}, exact))
    return result


def _throughput(window: str, now: datetime, seconds: int, rows: Sampled, full: bool) -> Throughput:
    """Finished tasks per bucket of the window, from :func:`summary`'s rows."""
    first, last = _bucket(now - WINDOWS[window], seconds), _bucket(now, seconds)
    found: dict[int, tuple[int, int]] = {}
    for state, b, within in rows:
        if b > first and states.rank(state) >= states.RANK_LOST:
            n, failed = found.get(b, (0, 0))
            found[b] = (n + within[-1], failed + (within[-1] if state in FAILED else 0))
    buckets = [
        Bucket(_start(b, seconds), *found.get(b, (0, 0))) for b in range(first + 1, last + 1)
    ]
    # A full sample may have stopped inside the window: its oldest bucket is partial,
    # and those before it were not read.
    oldest = min((b for _, b, _ in rows), default=None)
    counted_from = None
    if full and oldest is not None and oldest > first:
        counted_from = _start(oldest, seconds)
    return Throughput(window, BUCKETS[window], buckets, counted_from)


def _bucket_sql(vendor: str) -> str:
    """The bucket number of ``updated_at`` (seconds since the epoch // the bucket size).

    PostgreSQL's ``date_part`` is a float8; ``EXTRACT`` a numeric since PostgreSQL 14,
    whose division cost 20 ms of a 50,000-row scan (``EXPLAIN ANALYZE``, 10 M tasks)."""
    if vendor == "postgresql":
        return "FLOOR(date_part('epoch', updated_at) / %s)"
    if vendor == "mysql":
        return "FLOOR(UNIX_TIMESTAMP(updated_at) / %s)"
    # SQLite stores UTC text; '%%s' reaches SQLite as strftime's '%s'.
    return "CAST(strftime('%%s', updated_at) AS INTEGER) / %s"


def _bucket(moment: datetime, seconds: int) -> int:
    return math.floor(moment.timestamp() / seconds)


def _start(bucket: int, seconds: int) -> datetime:
    return datetime.fromtimestamp(bucket * seconds, UTC)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return {f"p{p}": None for p in PERCENTILES}
    return {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTILES}


#: What :func:`timings` may group by.
TIMED_BY = ("name", "queue")


def timings(now: datetime, since: timedelta = WINDOWS["hour"], by: str = "name") -> list[Timing]:
    """Percentiles per task name (or queue: ``by="queue"``, ``Timing.name`` is then the
    queue's) over the latest :data:`TIMING_SAMPLE` tasks that finished in the ``since``
    before ``now``, busiest first.

    Wait is the last attempt's, by the rule of :mod:`.waits`: from when that attempt
    became due (:func:`_due`) to its start, so a retry's countdown is left out.
    """
    rows = list(
        _tasks()
        .filter(updated_at__gte=now - since, updated_at__lte=now, rank=states.RANK_DONE)
        .exclude(started_at=None)
        .order_by("-updated_at")
        .values_list(
            "task_id",
            TIMED_BY[TIMED_BY.index(by)],
            "attempt",
            "sent_at",
            "started_at",
            "finished_at",
        )[:TIMING_SAMPLE]
    )
    due = _due(rows)
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    for task_id, name, _, _, started, finished in rows:
        if (wait := _waits.seconds(due.get(task_id), started)) is not None:
            waits[name].append(wait)
        if finished is not None:
            runs[name].append(max(0.0, (finished - started).total_seconds()))
    names = sorted(waits.keys() | runs.keys(), key=lambda n: (-len(runs[n] or waits[n]), n))
    return [
        Timing(n, max(len(waits[n]), len(runs[n])), _percentiles(waits[n]), _percentiles(runs[n]))
        for n in names
    ]


#: Ids per history query (SQLite allows 32,766 parameters; this stays far below).
_DUE_CHUNK = 500


def _due(rows: Sequence[tuple[Any, ...]]) -> dict[str, datetime]:
    """When each task's last attempt became due (:func:`.waits.became_due`), from the
    rows ``(task_id, _, attempt, sent_at, ...)``; a task whose moment is not known (a
    retried one whose history holds neither its noted due nor its retry: history
    trimmed, or written by an older release) is left out.

    Retried tasks are a few percent of a sample, so this reads only their STARTED and
    RETRY transitions, through the history's task index."""
    from ..models import Transition

    last = {r[0]: r[2] for r in rows if r[2] > 1}
    retried = sorted(last)
    noted: dict[str, datetime] = {}
    retried_at: dict[str, datetime] = {}
    history = Transition.objects.using(_alias()).filter(
        state__in=(states.STARTED, states.RETRY), action=""
    )
    for start in range(0, len(retried), _DUE_CHUNK):
        chunk = retried[start : start + _DUE_CHUNK]
        found = history.filter(task_id__in=chunk).values_list(
            "task_id", "state", "attempt", "at", "detail"
        )
        for task_id, state, attempt, at, detail in found:
            if state == states.STARTED and attempt == last[task_id]:
                if (when := _noted_moment((detail or {}).get("due"))) is not None:
                    noted[task_id] = when
            elif state == states.RETRY and attempt == last[task_id] - 1:
                retried_at[task_id] = at
    due = {
        task_id: _waits.became_due(attempt, sent_at, noted.get(task_id), retried_at.get(task_id))
        for task_id, _, attempt, sent_at, *_ in rows
    }
    return {task_id: moment for task_id, moment in due.items() if moment is not None}


def _noted_moment(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Ran:
    """Tasks one worker finished in a window, and how many of them failed."""

    finished: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


def ran_by_worker(now: datetime, since: timedelta = WINDOWS["hour"]) -> tuple[dict[str, Ran], bool]:
    """Tasks each worker finished in the ``since`` before ``now``, and whether that is
    exact (``False``: the window held more than :data:`SAMPLE` finished tasks, and these
    are the most recent :data:`SAMPLE`'s). One capped scan, like :func:`throughput`."""
    failed = ", ".join(f"'{state}'" for state in FAILED)
    sample = _recent_sql("state, worker, updated_at", f" AND rank >= {states.RANK_LOST}")
    sql = (
        f"SELECT worker, COUNT(*), SUM(CASE WHEN state IN ({failed}) THEN 1 ELSE 0 END) "
        f"FROM ({sample}) done GROUP BY worker"
    )
    rows = _run(sql, [_at(now - since), _at(now), SAMPLE])
    found = {str(w): Ran(int(n), int(f or 0)) for w, n, f in rows if w}
    return found, sum(n for _, n, _ in rows) < SAMPLE


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """Tasks of one queue sent and not yet started (PENDING, RECEIVED), by the store."""

    queue: str
    count: int
    oldest_sent_at: datetime | None


def waiting_by_queue(limit: int = SAMPLE) -> tuple[list[Waiting], bool]:
    """Each queue's waiting tasks and the oldest one's sending, over at most ``limit``
    of them, and whether that is all of them. One capped scan of the partial index of
    unfinished tasks (its condition repeated, so the planner picks it): at 10 M tasks
    it holds the few thousand in flight."""
    sample = (
        f"SELECT queue, sent_at FROM {TASK_TABLE} "
        f"WHERE rank < {states.RANK_LOST} AND rank <= {states.RANK_RECEIVED} LIMIT %s"
    )
    rows = _run(
        f"SELECT queue, COUNT(*), MIN(sent_at) FROM ({sample}) w GROUP BY queue ORDER BY queue",
        [limit],
    )
    connection = connections[_alias()]
    found = [Waiting(str(q), int(n), _moment(connection, oldest)) for q, n, oldest in rows]
    return found, sum(w.count for w in found) < limit


def _moment(connection: Any, value: Any) -> datetime | None:
    """A timestamp as raw SQL returns it (text on SQLite), as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value

    converted: datetime | None = connection.ops.convert_datetimefield_value(value, None, connection)
    return converted


@dataclasses.dataclass(frozen=True, slots=True)
class Gauges:
    """Tasks in flight now, each count capped at :data:`SAMPLE` (a lower bound then)."""

    running: int
    waiting: int
    stuck: int


def _stuck(now: datetime) -> Any:
    """The stuck tasks' rows: the one rule :func:`stuck` lists and :func:`gauges` counts."""
    from ..models import UNFINISHED

    cutoff = now - conf.get().STUCK_AFTER
    rows = _tasks().filter(UNFINISHED, updated_at__lt=cutoff)
    return rows.exclude(rank=states.RANK_RETRY, next_retry_at__gt=now)


def gauges(now: datetime) -> Gauges:
    """Running, waiting and stuck tasks: three counts over partial indexes, capped."""
    sync()
    from ..models import RUNNING, UNFINISHED

    running = _tasks().filter(RUNNING).order_by()[:SAMPLE].count()
    waiting = _tasks().filter(UNFINISHED, rank__lte=states.RANK_RECEIVED).order_by()
    return Gauges(running, waiting[:SAMPLE].count(), _stuck(now).order_by()[:SAMPLE].count())


def _records(rows: Any) -> list[TaskRecord]:
    return [_record(r) for r in rows]


def running(limit: int = LIST_LIMIT, where: Q | None = None) -> list[TaskRecord]:
    """Tasks running now, longest-running first; the partial running index holds only
    them. ``where``: a search's conditions (:meth:`.queries.TaskFilter.q`), checked on
    those few rows."""
    sync()
    from ..models import RUNNING

    rows = _tasks().filter(RUNNING, where or Q())
    return _records(rows.order_by("started_at", "task_id")[:limit])


def stuck(now: datetime, limit: int = LIST_LIMIT, where: Q | None = None) -> list[TaskRecord]:
    """Tasks not done whose record has not moved for ``STUCK_AFTER``, oldest first.

    Waiting that long means no worker takes them; running that long without a word
    means a hung task (a dead worker's tasks become ``LOST`` instead). A retry waiting
    for its countdown is not stuck.
    """
    return _records(_stuck(now).filter(where or Q()).order_by("updated_at", "task_id")[:limit])


def lost(limit: int = LIST_LIMIT, where: Q | None = None) -> list[TaskRecord]:
    """Tasks whose worker died under them, most recent first."""
    # By state, not rank (the same rows): the index of unsuccessful tasks serves it.
    rows = _tasks().filter(where or Q(), state=states.LOST)
    return _records(rows.order_by("-updated_at", "-task_id")[:limit])
