"""Where the workers page reads pool, active and reserved: Celery's remote control or
the heartbeat row. ``python -m bench.inspect [--runs 20] [--workers 2]``.

Starts real workers (tasktrail on PostgreSQL, Redis broker, ``bench.celeryapp``), waits
for their heartbeats, then times, per call: what ``app.control.inspect()`` needs for the
page (``stats()`` for the pool, ``active()``, ``reserved()``) at Celery's default 1 s
reply timeout and at 0.2 s, and :func:`tasktrail.system.fleet`, which reads the
heartbeat rows (and the last hour's finished tasks). Reports medians in ms. Nothing is
asserted; bench/README.md keeps a run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _timed(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inspect", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default="tt_bench_inspect")
    args = parser.parse_args(argv)
    os.environ["BENCH_SCENARIO"] = "tasktrail-postgres"
    os.environ["BENCH_PG_NAME"] = args.db
    os.environ.setdefault("BENCH_QUEUE", f"tasktrail-bench-inspect-{os.getpid()}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    from bench import database, scenarios, worker

    scenario = scenarios.get("tasktrail-postgres")
    database.recreate(scenario)
    import django

    django.setup()
    database.migrate(scenario)
    from django.utils import timezone

    from bench.celeryapp import app
    from tasktrail import system

    logs = Path(tempfile.mkdtemp(prefix="bench-inspect-"))
    with contextlib.ExitStack() as stack:
        for n in range(args.workers):
            stack.enter_context(worker.running(f"inspect{n}", logs / f"w{n}.log"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fleet = system.fleet(timezone.now())
            if sum(1 for w in fleet.workers if w.status.alive and w.pool) >= args.workers:
                break
            time.sleep(0.5)
        else:
            print("the workers did not heartbeat within 60 s")
            return 1
        results = {}
        for timeout in (1.0, 0.2):

            def page(timeout: float = timeout) -> None:
                inspector = app.control.inspect(timeout=timeout)
                inspector.stats()
                inspector.active()
                inspector.reserved()

            results[f"inspect stats+active+reserved, timeout {timeout:g} s"] = _timed(
                page, args.runs
            )
        results["heartbeat rows (system.fleet)"] = _timed(
            lambda: system.fleet(timezone.now()), args.runs
        )
    print(f"{args.workers} workers, {args.runs} calls each, median ms:")
    for label, ms in results.items():
        print(f"  {label:<48} {ms:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
