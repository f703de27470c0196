"""The metrics' counters: what each flush adds to ``tasktrail_metric``, and reading them.

Why a table the flush adds to, rather than counting tasks at scrape time: expiry
deletes finished tasks, so a count of rows goes down (a Prometheus counter must not),
and counting 10 M rows by name and state takes seconds on PostgreSQL, where this table
holds a few dozen rows per task name. The flush statement adds one batch's worth, one
upserted row per ``(name, kind, label)`` it touched, in the same statement (PostgreSQL)
or transaction (SQLite) as the task rows: the counters move exactly when the records do,
and a flush that fails adds nothing. Cost on the write path: bench/README.md.

The rule, one place for both databases (:data:`COUNTED_SQL` on PostgreSQL,
:func:`fold` elsewhere; tests run both):

- **A task counts once per final state its row takes**: when a flush lists a
  ``(state, attempt)`` in the history for the first time (:mod:`.history`, rule 1) and
  the row holds that state and attempt afterwards. A report the row refused (an outcome
  overtaken by a later one) is history, not an outcome. ``LOST`` is final until a real
  report replaces it; both are counted then (the task was lost, then it finished).
- **A retry counts once per attempt that asked for it** (a ``RETRY`` entry first listed),
  whatever the row shows by then: the next attempt may overtake it in the same flush.
- **Timings**, of tasks that succeed or fail: run time (started → finished, its last
  attempt) when the outcome is counted; queue wait by the one rule of :mod:`.waits`,
  once, in the flush that brings the later of the outcome and the sending (the
  producer's ``PENDING`` may land after a fast task's outcome). A flush knows when a
  first attempt became due (its sending) but not a retried one (the row does not keep
  the retry's due), so the histogram observes the waits of first attempts; a retry's
  countdown never reads as a slow queue.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from django.db import connections

from .. import states
from . import waits
from .db import alias

METRIC_TABLE: Final = "tasktrail_metric"
#: ``kind`` of a row: tasks by final state (``label``: the state), retries (``label``
#: empty), and the wait and run time histograms (``label``: a bucket's upper bound).
TASKS: Final = "tasks"
RETRIES: Final = "retries"
WAIT: Final = "wait"
RUN: Final = "run"
HISTOGRAMS: Final = (WAIT, RUN)
#: Histogram buckets' upper bounds in seconds: Prometheus' defaults up to 10 s, then
#: what long tasks take (reports, video: minutes to an hour). 17 buckets per name and
#: histogram keep the table at about 40 rows per name.
BOUNDS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
INF: Final = "+Inf"
#: History entries that may count: outcomes, retries, and a sending (the queue wait of
#: a task whose outcome was written first).
COUNTED_STATES: Final = states.READY_STATES | {states.RETRY, states.PENDING}
#: Outcomes whose timings are observed (a revoked or lost task's times say little).
TIMED: Final = (states.SUCCESS, states.FAILURE)


def label(bound: float) -> str:
    """A bound as Prometheus writes ``le``: ``0.005``, ``1.0``, ``3600.0``."""
    return repr(float(bound))


LABELS: Final = (*(label(b) for b in BOUNDS), INF)


def bucket(seconds: float) -> str:
    """The ``le`` label of the smallest bucket holding ``seconds``."""
    for bound in BOUNDS:
        if seconds <= bound:
            return label(bound)
    return INF


def _bucket_sql(seconds: str) -> str:
    cases = " ".join(f"WHEN {seconds} <= {b!r} THEN '{label(b)}'" for b in BOUNDS)
    return f"CASE {cases} ELSE '{INF}' END"


_TIMED_SQL = ", ".join(f"'{s}'" for s in TIMED)
_UPSERT_TAIL = (
    "ON CONFLICT (name, kind, label) DO UPDATE "
    "SET count = m.count + excluded.count, total = m.total + excluded.total"
)

#: The PostgreSQL flush's last part: reads the CTEs ``up`` (the upserted task rows,
#: ``RETURNING`` what :func:`fold` reads) and ``hist`` (the history entries inserted,
#: ``RETURNING task_id, state, attempt``). Sorted, so two flushes touching the same rows
#: lock them in the same order and cannot deadlock.
_WAIT_SQL = waits.seconds_sql(waits.first_due_sql("up.attempt", "up.sent_at"), "up.started_at")
COUNTED_SQL: Final = (
    # GREATEST skips NULLs; the difference of a missing time stays NULL through it.
    "done AS (SELECT up.name, up.state, "
    "(CASE WHEN up.started_at IS NOT NULL AND up.finished_at IS NOT NULL THEN "
    "GREATEST(0, EXTRACT(EPOCH FROM up.finished_at - up.started_at))::float8 END) AS run "
    "FROM hist JOIN up ON up.task_id = hist.task_id AND up.state = hist.state "
    f"AND up.attempt = hist.attempt WHERE up.rank >= {states.RANK_LOST}), "
    # One wait per task, in the flush that brought the later of its outcome and its
    # sending (a fast task's outcome may be written before its producer's PENDING).
    f"waited AS (SELECT DISTINCT ON (up.task_id) up.name, {_WAIT_SQL} AS wait "
    "FROM hist JOIN up ON up.task_id = hist.task_id "
    f"WHERE up.state IN ({_TIMED_SQL}) AND {_WAIT_SQL} IS NOT NULL "
    "AND ((hist.state = up.state AND hist.attempt = up.attempt) "
    f"OR (hist.state = '{states.PENDING}' AND hist.attempt = 1))), "
    f"counted AS (SELECT name, '{TASKS}' AS kind, state AS label, 0::float8 AS v FROM done "
    f"UNION ALL SELECT up.name, '{RETRIES}', '', 0 FROM hist JOIN up USING (task_id) "
    f"WHERE hist.state = '{states.RETRY}' "
    f"UNION ALL SELECT name, '{WAIT}', {_bucket_sql('wait')}, wait FROM waited "
    f"UNION ALL SELECT name, '{RUN}', {_bucket_sql('run')}, run FROM done "
    f"WHERE run IS NOT NULL AND state IN ({_TIMED_SQL})) "
    f"INSERT INTO {METRIC_TABLE} AS m (name, kind, label, count, total) "
    "SELECT name, kind, label, COUNT(*), SUM(v) FROM counted "
    f"GROUP BY name, kind, label ORDER BY name, kind, label {_UPSERT_TAIL}"
)
#: What ``up`` must return for :data:`COUNTED_SQL`.
RETURNED: Final = ("rank", "name", "sent_at", "started_at", "finished_at")


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    """A task row as a flush left it: what the counters read of it."""

    name: str
    state: str
    attempt: int
    sent_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


#: The task columns :class:`Stored` holds, in its order.
STORED: Final = tuple(f.name for f in dataclasses.fields(Stored))
Key = tuple[str, str, str]


def fold(
    listed: Iterable[tuple[str, str, int]], rows: dict[str, Stored]
) -> dict[Key, tuple[int, float]]:
    """What one flush adds: ``listed`` are the history entries it inserted
    ``(task_id, state, attempt)``, ``rows`` the task rows as it left them, by id."""
    added: dict[Key, list[float]] = defaultdict(lambda: [0, 0.0])

    def add(key: Key, seconds: float = 0.0) -> None:
        added[key][0] += 1
        added[key][1] += seconds

    waited: set[str] = set()
    for task_id, state, attempt in listed:
        row = rows.get(task_id)
        if row is None:
            continue
        if state == states.RETRY:
            add((row.name, RETRIES, ""))
            continue
        timed = row.state in TIMED
        if state == states.PENDING and attempt == 1 and timed:
            waited.add(task_id)  # a sending written after the outcome
        if (row.state, row.attempt) != (state, attempt) or states.rank(state) < states.RANK_LOST:
            continue
        add((row.name, TASKS, state))
        if timed:
            waited.add(task_id)
        if state in TIMED and row.started_at is not None and row.finished_at is not None:
            run = max(0.0, (row.finished_at - row.started_at).total_seconds())
            add((row.name, RUN, bucket(run)), run)
    for task_id in sorted(waited):
        row = rows[task_id]
        wait = waits.seconds(waits.became_due(row.attempt, row.sent_at), row.started_at)
        if wait is not None:
            add((row.name, WAIT, bucket(wait)), wait)
    return {key: (int(n), float(s)) for key, (n, s) in added.items()}


def upsert_sql(rows: int) -> str:
    """Add ``rows`` ``(name, kind, label, count, total)`` to the counters (SQLite)."""
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * rows)
    return (
        f"INSERT INTO {METRIC_TABLE} AS m (name, kind, label, count, total) "
        f"VALUES {values} {_UPSERT_TAIL}"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Counter:
    name: str
    kind: str
    label: str
    count: int
    #: Seconds observed in a histogram's bucket; 0 for counters.
    total: float


def read() -> list[Counter]:
    """Every counter, for a scrape: the whole (small) table, in key order."""
    with connections[alias()].cursor() as cursor:
        cursor.execute(
            f"SELECT name, kind, label, count, total FROM {METRIC_TABLE} ORDER BY name, kind, label"
        )
        return [Counter(n, k, lb, int(c), float(t)) for n, k, lb, c, t in cursor.fetchall()]
