"""Cleanup benchmark: delete 1 M expired tasks on PostgreSQL while tasks keep finishing.

``python -m bench.cleanup [--expired 1000000] [--kept 100000]`` recreates a database of
its own (``BENCH_CLEANUP_PG_NAME``, default ``tasktrail_bench_cleanup``), fills it with
expired tasks (each with three history rows, as a real task has) and with tasks that are
kept, then starts a writer process that records finishing tasks through tasktrail's write
path (buffer, guarded upsert, history) at a steady pace and times every flush. After a
quiet period it runs ``tasktrail.services.cleanup()`` and reports the elapsed time and the
writer's p50/p99 flush latency before and during the cleanup, as ratios. Nothing is
asserted: the numbers are for people (docs/failures.md keeps a run).

``--explain`` prints ``EXPLAIN ANALYZE`` of one delete batch before the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import database

_DB = os.environ.get("BENCH_CLEANUP_PG_NAME", "tasktrail_bench_cleanup")
# A worker's flush carries the outcomes of the tasks that finished in the last 20 ms.
_OUTCOMES_PER_FLUSH = 5
_FLUSHES_PER_SECOND = 100
_QUIET = 10.0


def _setup_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "tasktrail"],
        DATABASES={"default": database.django_postgres(_DB)},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


# Expired tasks finished two days ago and expired over the last day; kept ones expire
# tomorrow. Each has the three transitions a real task has.
_TASKS = """
INSERT INTO tasktrail_task (task_id, state, rank, attempt, name, queue, result, updated_at,
    sent_at, started_at, finished_at, expires_at, worker, worker_pid, error_type,
    error_message, traceback, progress_message, parent_id, root_id, group_id)
SELECT md5(%(prefix)s || i)::uuid::text, 'SUCCESS', 100, 1, 'app.tasks.report', 'celery',
    '{"rows": 1234}'::jsonb, now() - interval '2 days', now() - interval '2 days',
    now() - interval '2 days', now() - interval '2 days',
    now() + %(offset)s::interval + i * interval '1 millisecond', 'w1@host', 4242,
    '', '', '', '', '', '', ''
FROM generate_series(1, %(n)s) AS i
"""
_HISTORY = """
INSERT INTO tasktrail_transition (task_id, state, attempt, at, worker, detail)
SELECT md5(%(prefix)s || i)::uuid::text, s.state, 1, now() - interval '2 days', 'w1@host', NULL
FROM generate_series(1, %(n)s) AS i CROSS JOIN (VALUES ('PENDING'), ('STARTED'), ('SUCCESS'))
    AS s(state)
"""


def _fill(expired: int, kept: int) -> float:
    from django.core.management import call_command
    from django.db import connection

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        for prefix, n, offset in (("expired", expired, "-1 day"), ("kept", kept, "1 day")):
            params = {"prefix": prefix, "n": n, "offset": offset}
            cursor.execute(_TASKS, params)
            cursor.execute(_HISTORY, params)
        cursor.execute("VACUUM ANALYZE tasktrail_task")
        cursor.execute("VACUUM ANALYZE tasktrail_transition")
    return time.monotonic() - started


def _explain(batch: int) -> None:
    """The plans of one batch's statements (rolled back)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(
            "SELECT task_id FROM tasktrail_task WHERE expires_at < now() "
            "ORDER BY expires_at LIMIT %s",
            [batch],
        )
        ids = [row[0] for row in cursor.fetchall()]
        for statement in (
            "DELETE FROM tasktrail_task WHERE task_id = ANY(%s) AND expires_at < now()",
            "DELETE FROM tasktrail_transition WHERE task_id = ANY(%s)",
        ):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", [ids])
            # Without the 1000 ids the plan prints.
            print("\n".join(row[0][:120] for row in cursor.fetchall()))
        cursor.execute("ROLLBACK")


def _writer(out: Path) -> None:
    """Record finishing tasks at a steady pace; write "wall-clock-time latency" per flush."""
    from django.utils import timezone

    from tasktrail import store

    period = 1 / _FLUSHES_PER_SECOND
    n = 0
    with out.open("w") as log:
        next_at = time.monotonic()
        while True:
            started = time.monotonic()
            for _ in range(_OUTCOMES_PER_FLUSH):
                n += 1
                now = timezone.now()
                task_id = f"live-{os.getpid()}-{n}"
                store.record(store.event(task_id, "STARTED", 1, now, worker="w2@host"))
                store.record(store.event(task_id, "SUCCESS", 1, now, result="1"))
            store.sync()
            log.write(f"{time.time()} {time.monotonic() - started}\n")
            log.flush()
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


def _latencies(path: Path, start: float, end: float) -> list[float]:
    rows = (line.split() for line in path.read_text().splitlines())
    return [float(latency) for at, latency in rows if start <= float(at) < end]


def _quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from tasktrail import services

    log = Path(args.workdir) / "writer.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    writer = subprocess.Popen([sys.executable, "-m", "bench.cleanup", "--writer", str(log)])
    try:
        time.sleep(2)  # the writer connects and warms up
        quiet_from = time.time()
        time.sleep(_QUIET)
        started_at, started = time.time(), time.monotonic()
        expired = services.cleanup(batch=args.batch)
        elapsed, ended_at = time.monotonic() - started, time.time()
        time.sleep(_QUIET)
    finally:
        writer.terminate()
        writer.wait(10)
    return {
        "deleted": expired.tasks,
        "elapsed": elapsed,
        "before": _quantiles(_latencies(log, quiet_from, started_at)),
        "during": _quantiles(_latencies(log, started_at, ended_at)),
        "after": _quantiles(_latencies(log, ended_at, ended_at + _QUIET)),
        "flushes_during": len(_latencies(log, started_at, ended_at)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cleanup", description=__doc__)
    parser.add_argument("--expired", type=int, default=1_000_000)
    parser.add_argument("--kept", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=None, help="default: CLEANUP_BATCH")
    parser.add_argument("--workdir", default="/tmp/tasktrail-bench-cleanup")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        _setup_django()
        _writer(args.writer)
        return 0
    database.recreate_postgres(_DB)
    _setup_django()
    filled = _fill(args.expired, args.kept)
    print(
        f"filled {args.expired:,} expired tasks and {args.kept:,} kept ones, three history "
        f"rows each, in {filled:.1f} s"
    )
    if args.explain:
        from tasktrail import conf

        _explain(args.batch or conf.get().CLEANUP_BATCH)
    result = _run(args)
    (p50_before, p99_before), (p50_during, p99_during) = result["before"], result["during"]
    p50_after, p99_after = result["after"]
    print(
        f"cleanup: deleted {result['deleted']:,} tasks in {result['elapsed']:.1f} s "
        f"({result['deleted'] / result['elapsed']:,.0f} tasks/s)\n"
        f"writer ({_OUTCOMES_PER_FLUSH} outcomes per flush, {_FLUSHES_PER_SECOND} flushes/s, "
        f"{result['flushes_during']} flushes during the cleanup):\n"
        f"  p50 {p50_before:.2f} ms before, {p50_during:.2f} ms during "
        f"({p50_during / p50_before:.2f}x), {p50_after:.2f} ms after\n"
        f"  p99 {p99_before:.2f} ms before, {p99_during:.2f} ms during "
        f"({p99_during / p99_before:.2f}x), {p99_after:.2f} ms after"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
