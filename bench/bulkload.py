"""A fast bulk loader of realistic task rows, for benchmarks that need a big table.

The server generates the rows (``INSERT ... SELECT ... FROM generate_series``), so
nothing travels over the wire: about 10 M tasks and their history per few minutes on
2 cores. The data set looks like a month of a busy deployment that keeps results for
31 days:

* ``sent_at`` spans the last ``DAYS`` days, denser towards now (age grows as the
  1.5th power of the row's position), and the heap is in the order the tasks were
  sent, as in a real table; the other timestamps follow (queue wait, run time).
* 30 task names over 6 queues, skewed (the busiest name sends a quarter of the tasks,
  the rarest a few in 10,000); one flaky name fails 15 % of the time.
* States: the newest ``IN_FLIGHT`` tasks are in flight (PENDING, RECEIVED, STARTED,
  RETRY); the rest finished: SUCCESS about 95 %, FAILURE 3.5 %, REVOKED 1 %,
  LOST 0.3 %, and 0.02 % PENDING forever (a lost message).
* 20 % of the tasks have an owner (one of ``USERS`` users, created here), 5 % belong
  to a group of 20 (with a parent), a few percent were retried (attempt 2 or 3);
  finished tasks expire 31 days after they finished (none has expired yet).
* History: PENDING, RECEIVED, STARTED (as far as the task got), a RETRY per earlier
  attempt and the final state: about 3.9 rows per task.

Loading needs an empty, migrated database (``load``); ``ensure`` does the whole job on
a database of its own and records what it loaded, so a later run with the same
parameters reuses it. Times are relative to the moment of loading: the longer ago
that was, the emptier "the last hour" is (``ensure`` reports the age).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final

from tasktrail import states
from tasktrail.store.sql import HISTORY_TABLE, NAME_TABLE, TASK_TABLE

#: Bump when the generated data changes shape: a stored data set of another version
#: is reloaded.
VERSION: Final = 2  # 2: no loaded time after the load began
DAYS: Final = 30
IN_FLIGHT: Final = 6000
USERS: Final = 500
GROUP_SIZE: Final = 20
CHUNK: Final = 500_000
META_TABLE: Final = "bench_dataset"

# name, queue, weight, typical run time (s), max_retries (None: not retried)
NAMES: Final[tuple[tuple[str, str, float, float, int | None], ...]] = (
    ("app.emails.send_notification", "emails", 250, 0.15, 3),
    ("app.webhooks.deliver", "webhooks", 150, 0.4, 5),
    ("app.search.index_document", "celery", 120, 0.05, None),
    ("app.emails.send_digest", "emails", 60, 0.3, 3),
    ("app.media.make_thumbnail", "media", 55, 1.2, 2),
    ("app.billing.charge_card", "billing", 40, 0.8, 3),
    ("app.analytics.track_event", "celery", 40, 0.01, None),
    ("app.integrations.sync_crm", "webhooks", 30, 2.5, 5),
    ("app.cache.warm_page", "celery", 30, 0.2, None),
    ("app.reports.build_daily", "reports", 25, 45.0, 1),
    ("app.media.transcode_video", "media", 20, 120.0, 2),
    ("app.users.send_password_reset", "emails", 18, 0.1, 3),
    ("app.billing.send_invoice", "billing", 16, 0.6, 3),
    ("app.exports.export_csv", "reports", 14, 12.0, 1),
    ("app.notifications.push_mobile", "webhooks", 14, 0.3, 3),
    ("app.search.reindex_user", "celery", 12, 0.5, None),
    ("app.media.scan_upload", "media", 10, 3.0, 2),
    ("app.billing.reconcile_payments", "billing", 8, 30.0, 1),
    ("app.reports.build_weekly", "reports", 6, 180.0, 1),
    ("app.users.cleanup_sessions", "celery", 6, 4.0, None),
    ("app.integrations.import_contacts", "webhooks", 5, 20.0, 3),
    ("app.ml.score_lead", "celery", 5, 0.9, None),
    ("app.exports.export_pdf", "reports", 4, 8.0, 1),
    ("app.audit.archive_events", "celery", 3, 60.0, None),
    ("app.media.generate_sprite", "media", 2, 15.0, 2),
    ("app.billing.close_month", "billing", 1, 300.0, 1),
    ("app.ml.retrain_model", "reports", 0.5, 900.0, None),
    ("app.maintenance.vacuum_storage", "celery", 0.3, 240.0, None),
    ("app.maintenance.rotate_keys", "celery", 0.1, 5.0, None),
    ("app.maintenance.rebuild_search_index", "celery", 0.05, 1200.0, None),
)
FLAKY: Final = "app.integrations.sync_crm"
IN_FLIGHT_STATES: Final = (
    ("PENDING", 0.45),
    ("RECEIVED", 0.10),
    ("STARTED", 0.38),
    ("RETRY", 0.07),
)
DONE_STATES: Final = (
    ("PENDING", 0.0002),
    ("LOST", 0.003),
    ("REVOKED", 0.01),
    ("FAILURE", 0.035),
    ("SUCCESS", 0.9518),
)
FLAKY_STATES: Final = (
    ("PENDING", 0.0002),
    ("LOST", 0.003),
    ("REVOKED", 0.01),
    ("FAILURE", 0.15),
    ("SUCCESS", 0.8368),
)
RANKS: Final = {state: states.rank(state) for state in states.BUILTIN_STATES}
_TRACEBACK: Final = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/.venv/lib/python3.13/site-packages/celery/app/trace.py", line 453, '
    "in trace_task\n    R = retval = fun(*args, **kwargs)\n"
    '  File "/srv/app/.venv/lib/python3.13/site-packages/celery/app/trace.py", line 736, '
    "in __protected_call__\n    return self.run(*args, **kwargs)\n"
    '  File "/srv/app/app/tasks.py", line 88, in run\n    response = client.post(url, '
    "json=payload, timeout=10)\n"
    '  File "/srv/app/app/clients.py", line 41, in post\n    raise UpstreamError(f"{status} '
    'from {url}")\n'
)


def _cuts(weights: Sequence[float]) -> list[float]:
    """Lower bounds of the buckets for ``width_bucket(random(), cuts)``: 1-based index."""
    total = sum(weights)
    return [0.0, *(w / total for w in accumulate(weights))][:-1]


_STATE_RANK = "CASE state " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in RANKS.items()) + " END"

# g: the row's position and its random draws; s: name, state and times; then the row.
_TASKS = f"""
WITH g AS (
    SELECT i,
        %(span)s * power((%(n)s - i)::float8 / %(n)s, 1.5) + random() AS age,
        i > %(n)s - %(in_flight)s AS in_flight,
        width_bucket(random(), %(name_cuts)s::float8[]) AS k,
        random() AS r_state, random() AS r_owner, random() AS r_wait, random() AS r_run,
        random() AS r_retry
    FROM generate_series(%(lo)s, %(hi)s) AS i
), s AS (
    SELECT g.*,
        CASE WHEN in_flight
            THEN (%(in_flight_states)s::text[])[width_bucket(r_state, %(in_flight_cuts)s::float8[])]
            WHEN k = %(flaky)s
            THEN (%(done_states)s::text[])[width_bucket(r_state, %(flaky_cuts)s::float8[])]
            ELSE (%(done_states)s::text[])[width_bucket(r_state, %(done_cuts)s::float8[])]
        END AS state,
        (%(max_retries)s::int[])[k] AS max_retries,
        %(t0)s::timestamptz - age * interval '1 second' AS sent,
        (0.005 + 30 * power(r_wait, 6)) * interval '1 second' AS wait,
        (%(runtimes)s::float8[])[k] * (0.2 + 1.6 * r_run) * interval '1 second' AS run
    FROM g
), t AS (
    SELECT s.*,
        CASE WHEN max_retries IS NULL OR state = 'PENDING' THEN 1
            ELSE 1 + (r_retry < 0.03)::int + (r_retry < 0.005)::int END AS attempt,
        CASE WHEN state IN ('PENDING', 'REVOKED') THEN NULL
            ELSE LEAST(sent + wait / 2, %(t0)s::timestamptz) END AS received_at,
        CASE WHEN state IN ('PENDING', 'RECEIVED', 'REVOKED') THEN NULL
            ELSE LEAST(sent + wait, %(t0)s::timestamptz) END AS started_at,
        -- No time after the load began: a benchmark writing into the data set tells its
        -- own rows by updated_at after the newest loaded one (bench.database).
        LEAST(CASE WHEN state IN ('SUCCESS', 'FAILURE') THEN sent + wait + run
            WHEN state = 'REVOKED' THEN sent + wait
            WHEN state = 'LOST' THEN sent + wait + interval '5 minutes' END,
            %(t0)s::timestamptz) AS finished_at,
        CASE WHEN state IN ('PENDING', 'REVOKED') THEN ''
            ELSE 'celery@worker-' || (1 + i %% 8) END AS worker
    FROM s
)
INSERT INTO {TASK_TABLE} (task_id, state, rank, attempt, max_retries, name, queue, args, kwargs,
    result, children, error_type, error_message, traceback, progress_current, progress_total,
    progress_message, meta, owner_id, parent_id, root_id, group_id, worker, worker_pid,
    sent_at, received_at, started_at, finished_at, updated_at, next_retry_at, expires_at)
SELECT md5(%(prefix)s || i)::uuid::text, state, {_STATE_RANK}, attempt, max_retries,
    (%(names)s::text[])[k], (%(queues)s::text[])[k],
    ('[' || (i %% 100000) || ', "acct-' || (i %% 977) || '"]')::jsonb,
    ('{{"user_id": ' || (i %% 5000) || ', "force": false}}')::jsonb,
    CASE state
        WHEN 'SUCCESS' THEN ('{{"ok": true, "rows": ' || (i %% 10000) || '}}')::jsonb
        WHEN 'FAILURE' THEN '{{"exc_type": "UpstreamError", "exc_module": "app.clients",
            "exc_message": ["502 from https://api.example.com/v1/sync"]}}'::jsonb
        WHEN 'RETRY' THEN '{{"exc_type": "Retry", "exc_module": "celery.exceptions",
            "exc_message": ["Retry in 60s"]}}'::jsonb
        WHEN 'REVOKED' THEN '{{"exc_type": "TaskRevokedError", "exc_module":
            "celery.exceptions", "exc_message": ["revoked"]}}'::jsonb
    END,
    NULL,
    CASE state WHEN 'FAILURE' THEN 'UpstreamError' WHEN 'RETRY' THEN 'Retry'
        WHEN 'REVOKED' THEN 'TaskRevokedError' WHEN 'LOST' THEN 'WorkerLostError' ELSE '' END,
    CASE state WHEN 'FAILURE' THEN '502 from https://api.example.com/v1/sync'
        WHEN 'RETRY' THEN 'Retry in 60s' WHEN 'REVOKED' THEN 'revoked'
        WHEN 'LOST' THEN 'the worker running the task stopped heartbeating' ELSE '' END,
    CASE WHEN state IN ('FAILURE', 'RETRY') THEN %(traceback)s ELSE '' END,
    CASE WHEN state = 'STARTED' AND r_run < 0.3 THEN floor(r_run * 300) END,
    CASE WHEN state = 'STARTED' AND r_run < 0.3 THEN 100 END,
    CASE WHEN state = 'STARTED' AND r_run < 0.3 THEN 'processing' ELSE '' END,
    NULL,
    CASE WHEN r_owner < 0.2 THEN 1 + floor(r_owner * 5 * %(users)s)::int END,
    CASE WHEN (i / %(group_size)s) %% 20 = 7
        THEN md5(%(prefix)s || 'parent' || (i / %(group_size)s))::uuid::text ELSE '' END,
    CASE WHEN (i / %(group_size)s) %% 20 = 7
        THEN md5(%(prefix)s || 'parent' || (i / %(group_size)s))::uuid::text ELSE '' END,
    CASE WHEN (i / %(group_size)s) %% 20 = 7
        THEN md5(%(prefix)s || 'group' || (i / %(group_size)s))::uuid::text ELSE '' END,
    worker, CASE WHEN worker <> '' THEN 1000 + i %% 16 END,
    sent, received_at, started_at, finished_at,
    CASE WHEN state = 'PENDING' THEN sent
        WHEN state = 'RECEIVED' THEN received_at
        WHEN state = 'STARTED' THEN started_at
        WHEN state = 'RETRY' THEN LEAST(started_at + run, %(t0)s::timestamptz)
        ELSE finished_at END,
    CASE WHEN state = 'RETRY' THEN started_at + run + interval '60 seconds' END,
    finished_at + interval '31 days'
FROM t
RETURNING task_id, state, attempt, sent_at, received_at, started_at, updated_at, worker
"""

# The history of the tasks just inserted (the statement above runs as this one's CTE).
_HISTORY = f"""
INSERT INTO {HISTORY_TABLE} (task_id, state, attempt, at, worker, detail)
SELECT ins.task_id, h.state, h.attempt, h.at, h.worker, NULL
FROM ins CROSS JOIN LATERAL (VALUES
    (1, 'PENDING', 1, ins.sent_at, ''),
    (2, 'RECEIVED', 1, ins.received_at, ins.worker),
    (3, 'STARTED', 1, ins.started_at, ins.worker),
    (4, 'RETRY', 1, CASE WHEN ins.attempt > 1 THEN ins.started_at END, ins.worker),
    (5, 'RETRY', 2, CASE WHEN ins.attempt > 2 THEN ins.started_at END, ins.worker),
    (6, ins.state, ins.attempt,
        CASE WHEN ins.state NOT IN ('PENDING', 'RECEIVED', 'STARTED') THEN ins.updated_at END,
        ins.worker)
) AS h(n, state, attempt, at, worker)
WHERE h.at IS NOT NULL
    AND (%(history_every)s = 1 OR abs(hashtext(ins.task_id)) %% %(history_every)s = 0)
"""

_USERS = """
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email,
    is_staff, is_active, date_joined)
SELECT u, '!', false, 'user' || lpad(u::text, 4, '0'), '', '', 'user' || u || '@example.com',
    false, true, %(t0)s::timestamptz - interval '90 days'
FROM generate_series(1, %(users)s) AS u
ON CONFLICT DO NOTHING
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Spec:
    """What to load: the signature a stored data set is recognised by."""

    tasks: int
    #: History for one task in ``history_every`` (1: all, 0: none). A sample is enough
    #: for the pages (they read one task's history by its indexed id) and loads in a
    #: fraction of the time.
    history_every: int = 4
    version: int = VERSION

    def signature(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _params(spec: Spec, lo: int, hi: int, t0: datetime) -> dict[str, Any]:
    def states(pairs: Sequence[tuple[str, float]]) -> tuple[list[str], list[float]]:
        return [s for s, _ in pairs], _cuts([w for _, w in pairs])

    in_flight_states, in_flight_cuts = states(IN_FLIGHT_STATES)
    done_states, done_cuts = states(DONE_STATES)
    _, flaky_cuts = states(FLAKY_STATES)
    return {
        "n": spec.tasks,
        "lo": lo,
        "hi": hi,
        "t0": t0,
        "span": DAYS * 86400.0,
        "in_flight": min(IN_FLIGHT, spec.tasks // 100),
        "name_cuts": _cuts([w for _, _, w, _, _ in NAMES]),
        "names": [n for n, _, _, _, _ in NAMES],
        "queues": [q for _, q, _, _, _ in NAMES],
        "runtimes": [r for _, _, _, r, _ in NAMES],
        "max_retries": [m for _, _, _, _, m in NAMES],
        "flaky": [n for n, _, _, _, _ in NAMES].index(FLAKY) + 1,
        "in_flight_states": in_flight_states,
        "in_flight_cuts": in_flight_cuts,
        "done_states": done_states,
        "done_cuts": done_cuts,
        "flaky_cuts": flaky_cuts,
        "traceback": _TRACEBACK,
        "users": USERS,
        "group_size": GROUP_SIZE,
        "prefix": "tt-bench-",
        "history_every": max(spec.history_every, 1),
    }


def _statement(spec: Spec) -> str:
    if spec.history_every <= 0:
        return _TASKS
    return f"WITH ins AS ({_TASKS}) {_HISTORY}"


def _indexes(cursor: Any, table: str) -> list[tuple[str, str]]:
    """(drop, create) statements for every index of ``table``, constraints included."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid), c.conname, pg_get_constraintdef(c.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
        WHERE x.indrelid = %s::regclass ORDER BY i.relname
        """,
        [table],
    )
    out = []
    for index, index_def, constraint, constraint_def in cursor.fetchall():
        if constraint:
            out.append(
                (
                    f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"',
                    f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {constraint_def}',
                )
            )
        else:
            out.append((f'DROP INDEX "{index}"', index_def))
    return out


Progress = Callable[[str], None]


def load(cursor: Any, spec: Spec, progress: Progress = lambda _: None) -> dict[str, float]:
    """Fill the empty task tables of a migrated database (autocommit) with ``spec``.

    Drops the tables' indexes for the load and builds them again afterwards, then
    ``VACUUM ANALYZE``. Returns the seconds each phase took.
    """
    t0 = datetime.now(UTC)
    times: dict[str, float] = {}
    started = time.monotonic()
    cursor.execute("SET synchronous_commit = off")
    cursor.execute("SET maintenance_work_mem = '1GB'")
    cursor.execute("SET max_parallel_maintenance_workers = 2")
    cursor.execute("SET work_mem = '256MB'")
    cursor.execute("SELECT setseed(0.42)")
    tables = (TASK_TABLE, HISTORY_TABLE)
    indexes = [pair for table in tables for pair in _indexes(cursor, table)]
    cursor.execute(_USERS, {"t0": t0, "users": USERS})
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence('auth_user', 'id'), (SELECT max(id) FROM auth_user))"
    )
    statement = _statement(spec)
    for drop, _ in indexes:
        cursor.execute(drop)
    try:
        for lo in range(1, spec.tasks + 1, CHUNK):
            hi = min(lo + CHUNK - 1, spec.tasks)
            cursor.execute(statement, _params(spec, lo, hi, t0))
            progress(f"  {hi:,} / {spec.tasks:,} tasks ({time.monotonic() - started:.0f} s)")
    finally:
        # Even after a failure: a database used by others (tests) keeps its indexes.
        times["rows"] = time.monotonic() - started
        mark = time.monotonic()
        for _, create in indexes:
            cursor.execute(create)
            progress(f"  {create[:100]} ({time.monotonic() - mark:.0f} s)")
        times["indexes"] = time.monotonic() - mark
    mark = time.monotonic()
    for table in tables:
        cursor.execute(f"VACUUM ANALYZE {table}")
    cursor.execute("ANALYZE auth_user")
    times["vacuum_analyze"] = time.monotonic() - mark
    # The known names the search reads, as migration 0008 fills them from a loaded table
    # (the load bypasses the write path that keeps them).
    cursor.execute(
        f"INSERT INTO {NAME_TABLE} (name, queue) SELECT DISTINCT name, queue "
        f"FROM {TASK_TABLE} WHERE name <> '' ON CONFLICT DO NOTHING"
    )
    times["total"] = time.monotonic() - started
    return times


def _ensure_meta(cursor: Any) -> None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key text PRIMARY KEY, value jsonb)")


def loaded(cursor: Any) -> dict[str, Any] | None:
    """What :func:`record` stored about this database's data set, if anything."""
    _ensure_meta(cursor)
    cursor.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'dataset'")
    row = cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, str) else dict(value)


def record(cursor: Any, spec: Spec, times: dict[str, float]) -> None:
    _ensure_meta(cursor)
    # The newest loaded row's updated_at: a benchmark that writes into the data set
    # finds (and deletes) its own rows after it (bench.database).
    cursor.execute(f"SELECT max(updated_at) FROM {TASK_TABLE}")
    newest = cursor.fetchone()[0]
    value = {
        "spec": spec.signature(),
        "loaded_at": datetime.now(UTC).isoformat(),
        "newest": None if newest is None else newest.isoformat(),
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    cursor.execute(
        f"INSERT INTO {META_TABLE} (key, value) VALUES ('dataset', %s::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [json.dumps(value)],
    )


def counts(cursor: Any) -> dict[str, int]:
    """Exact row counts (a sequential scan each: seconds at 10 M rows)."""
    out = {}
    for table in (TASK_TABLE, HISTORY_TABLE):
        cursor.execute(f"SELECT count(*) FROM {table}")
        out[table] = int(cursor.fetchone()[0])
    return out


def state_counts(cursor: Any) -> dict[str, int]:
    cursor.execute(f"SELECT state, count(*) FROM {TASK_TABLE} GROUP BY state ORDER BY 2 DESC")
    return {state: int(n) for state, n in cursor.fetchall()}
