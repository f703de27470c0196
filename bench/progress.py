"""``python -m bench.progress``: what a ``tasktrail.progress()`` call costs, alone and contended.

Each measurement runs tasks whose only work is a loop of progress calls
(``bench.progress_loop``, through ``tasktrail.progress()`` or a captured
``tasktrail.reporter()``), all at once, and reports the calls per second of the
whole process, per task, and as a ratio to the same call in one thread:

- in this process: 1 thread, then 50 threads each applying one task (Celery's eager
  mode: the same prerun and postrun signals as a worker, no broker);
- in a real worker, ``--pool=threads --concurrency=50``: 50 tasks sent at once, whose
  loops start together (a Redis barrier).

Under the GIL the 50 threads cannot do more calls than one thread does; the ratio says
how much of one thread's rate contention leaves (1.00x: none lost). Every task's last
value must be in the store afterwards ("last stored"); a missing one fails the run.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procstat, worker

VIAS = ("progress", "reporter")
QUICK_CALLS = 20_000
_RESULT_TIMEOUT = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    where: str  # "process" or "worker"
    via: str
    threads: int
    calls: int  # per task

    @property
    def label(self) -> str:
        where = "this process" if self.where == "process" else "worker --pool=threads"
        return f"{where}, {self.via}()"


@dataclasses.dataclass(frozen=True, slots=True)
class Loop:
    """One task's loop, from the task's own clock (perf_counter: one clock per machine)."""

    task_id: str
    began: float
    ended: float


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.progress",
        description="tasktrail.progress() calls per second: 1 thread, 50 threads, a worker.",
    )
    parser.add_argument(
        "--calls", type=int, default=1_000_000, help="calls per measurement, over all its tasks"
    )
    parser.add_argument("--threads", type=int, default=50, help="threads (and pool size)")
    parser.add_argument("--via", default=",".join(VIAS), help=f"comma-separated, of: {VIAS}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_CALLS} calls")
    parser.add_argument("--no-worker", action="store_true", help="this process only")
    parser.add_argument(
        "--scenario",
        default="tasktrail-sqlite",
        choices=("tasktrail-sqlite", "tasktrail-postgres"),
        help="the store (see python -m bench)",
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="for the barrier")
    parser.add_argument("--queue", default="tasktrail-bench-progress")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tasktrail-bench"
    )
    parser.add_argument("--pg-db", default="tasktrail_bench_progress", help="dropped, recreated")
    parser.add_argument("--src", type=Path, help="import tasktrail from this directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.vias = [v.strip() for v in args.via.split(",") if v.strip()]
    if not args.vias or set(args.vias) - set(VIAS):
        parser.error(f"--via: comma-separated, of: {', '.join(VIAS)}")
    if args.quick:
        args.calls = QUICK_CALLS
    if args.calls < args.threads or args.threads < 1 or args.repeat < 1:
        parser.error("--threads and --repeat must be at least 1, --calls at least --threads")
    return args


def cases(args: argparse.Namespace) -> list[Case]:
    found: list[Case] = []
    for via in args.vias:
        found.append(Case("process", via, 1, args.calls))
        found.append(Case("process", via, args.threads, args.calls // args.threads))
    if not args.no_worker:
        found += [Case("worker", v, args.threads, args.calls // args.threads) for v in args.vias]
    return found


def _log(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _setup(args: argparse.Namespace) -> None:
    """Django settings of the chosen scenario (bench/settings.py), on a fresh store."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        BENCH_SCENARIO=args.scenario,
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_BROKER=args.broker,
        BENCH_REDIS=args.redis,
        BENCH_QUEUE=args.queue,
        BENCH_PG_NAME=args.pg_db,
        BENCH_SQLITE_PATH=str(args.workdir / "tasktrail-bench-progress.sqlite3"),
    )
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))
        # The worker's too (bench.worker puts the repository first, which holds no tasktrail).
        os.environ["PYTHONPATH"] = str(args.src.resolve())
    import django

    from bench import database, scenarios

    scenario = scenarios.get(args.scenario)
    database.recreate(scenario)
    django.setup()
    database.migrate(scenario)


def in_process(case: Case) -> list[Loop]:
    """``case.threads`` threads, each applying one task in this process, released together."""
    from bench.celeryapp import progress_loop

    barrier = threading.Barrier(case.threads)
    loops: list[Loop] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            result = progress_loop.apply(args=(case.calls, case.via))
            began, ended = result.get()
            loops.append(Loop(result.id, began, ended))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(case.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return loops


def on_worker(case: Case) -> list[Loop]:
    """``case.threads`` tasks sent at once to the threads-pool worker; their loops."""
    from bench.celeryapp import BARRIER_KEY, counter, progress_loop

    counter().delete(BARRIER_KEY, BARRIER_KEY + ":go")
    sent = [progress_loop.delay(case.calls, case.via, case.threads) for _ in range(case.threads)]
    loops = []
    for result in sent:
        began, ended = result.get(timeout=_RESULT_TIMEOUT)
        loops.append(Loop(result.id, began, ended))
    return loops


def stored_last(loops: list[Loop], calls: int) -> int:
    """How many of the tasks show their last value, ``calls``, in the store."""
    import tasktrail
    from tasktrail import store

    store.sync()
    found = 0
    for loop in loops:
        progress = tasktrail.get(loop.task_id).progress
        found += progress is not None and progress.current == calls
    return found


def measure(
    case: Case, run: Callable[[Case], list[Loop]], worker_pid: int | None
) -> dict[str, Any]:
    before = procstat.snapshot(worker_pid)
    loops = run(case)
    after = procstat.snapshot(worker_pid)
    began = min(loop.began for loop in loops)
    ended = max(loop.ended for loop in loops)
    cpu = procstat.per_task_ms(before, after, 1)
    calls = case.threads * case.calls
    # This process or the worker's, every thread counted (the writer threads too).
    party = "producer" if worker_pid is None else "worker_main"
    return {
        "case": dataclasses.asdict(case),
        "rate": calls / (ended - began),
        "cpu_us_per_call": cpu.get(party, 0.0) * 1000 / calls,
        "task_rate": statistics.median(case.calls / (x.ended - x.began) for x in loops),
        "stored_last": stored_last(loops, case.calls),
        "tasks": len(loops),
        "noise": round(procstat.others_share(cpu), 3),
    }


def run_cases(args: argparse.Namespace, planned: list[Case]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    local = [c for c in planned if c.where == "process"]
    remote = [c for c in planned if c.where == "worker"]
    for via in args.vias:
        in_process(Case("process", via, 1, 1000))  # untimed: imports, connections, threads
    for index in range(args.repeat):
        for case in local:
            _log(f"[{index + 1}/{args.repeat}] {case.label}, {case.threads} thread(s)")
            runs.append(measure(case, in_process, None))
    if not remote:
        return runs
    log = args.workdir / "worker-progress.log"
    with worker.running("bench-progress", log, "threads", args.threads) as proc:
        _log(f"worker pid {proc.pid} (--pool=threads -c {args.threads}), log {log}")
        _warm_up(proc.pid)
        for index in range(args.repeat):
            for case in remote:
                _log(f"[{index + 1}/{args.repeat}] {case.label}, {case.threads} tasks")
                runs.append(measure(case, on_worker, proc.pid))
    return runs


def _warm_up(pid: int) -> None:
    from bench.celeryapp import progress_loop

    # Also waits for the worker to boot.
    progress_loop.delay(10, "progress").get(timeout=120)
    _log(f"worker {pid} ready")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per case: medians over repeats, the ratio to one thread in this process."""
    rows: list[dict[str, Any]] = []
    for case in dict.fromkeys(json.dumps(r["case"], sort_keys=True) for r in runs):
        mine = [r for r in runs if json.dumps(r["case"], sort_keys=True) == case]
        rows.append(
            {
                **mine[0]["case"],
                "rate": statistics.median(r["rate"] for r in mine),
                "task_rate": statistics.median(r["task_rate"] for r in mine),
                "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in mine),
                "stored_last": min(r["stored_last"] for r in mine),
                "tasks": mine[0]["tasks"],
                "noise": max(r["noise"] for r in mine),
            }
        )
    for row in rows:
        alone = [
            r for r in rows if (r["where"], r["via"], r["threads"]) == ("process", row["via"], 1)
        ]
        row["ratio"] = row["rate"] / alone[0]["rate"] if alone else None
        row["cpu_ratio"] = (
            alone[0]["cpu_us_per_call"] / row["cpu_us_per_call"]
            if alone and row["cpu_us_per_call"]
            else None
        )
    return rows


def render(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    head = (
        f"tasktrail progress calls: {config['calls']:,} per case, median of {config['repeat']}, "
        f"{config['cpus']} CPUs, Python {config['python']}, store {config['scenario']}\n"
        f"command: {config['command']}\n"
        f"tasktrail: {config['tasktrail_source']}\n"
        "x1 thread = calls/s of the whole process / calls/s of the same call in 1 thread here;\n"
        "CPU x1 = CPU per call of that 1 thread / CPU per call here (both: 1.00x = no loss)\n"
    )
    header = (
        f"{'where, call':<33}  {'threads':>7}  {'calls/s':>9}  {'us/call':>7}  "
        f"{'x1 thread':>9}  {'CPU us/call':>11}  {'CPU x1':>6}  {'per task/s':>10}  "
        f"{'last stored':>11}  {'others':>6}"
    )
    lines = [head, header, "-" * len(header)]
    for row in rows:
        case = Case(row["where"], row["via"], row["threads"], row["calls"])
        ratio, cpu_ratio = (
            "-" if row[key] is None else f"{row[key]:.2f}x" for key in ("ratio", "cpu_ratio")
        )
        lines.append(
            f"{case.label:<33}  {row['threads']:>7}  {row['rate']:>9,.0f}  "
            f"{1e6 / row['rate']:>7.2f}  {ratio:>9}  {row['cpu_us_per_call']:>11.2f}  "
            f"{cpu_ratio:>6}  {row['task_rate']:>10,.0f}  "
            f"{str(row['stored_last']) + '/' + str(row['tasks']):>11}  {row['noise']:>6.0%}"
        )
    lines.append(
        "\nus/call: 1e6 / calls/s (the process's time per call, all threads together); CPU "
        "us/call: CPU time of the\nprocess (this one or the worker) per call; per task/s: "
        "median of each task's own loop; last stored:\ntasks whose final value is in the "
        "store; others: share of the machine's busy CPU taken by other processes."
    )
    return "\n".join(lines)


def _config(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    import tasktrail

    given = sys.argv[1:] if argv is None else argv
    described = procstat.git_describe()
    source = f"{tasktrail.__file__}" + (f" (git {described})" if described else "")
    return {
        "command": shlex.join(["python", "-m", "bench.progress", *given]),
        "calls": args.calls,
        "threads": args.threads,
        "repeat": args.repeat,
        "scenario": args.scenario,
        "tasktrail_source": source,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "switch_interval_s": sys.getswitchinterval(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    _setup(args)
    config = _config(args, argv)
    runs = run_cases(args, cases(args))
    rows = summarise(runs)
    print(render(rows, config))
    if args.json:
        args.json.write_text(json.dumps({"config": config, "rows": rows, "runs": runs}, indent=2))
    # A lost final value is a failure; a slow run is not.
    return 0 if all(r["stored_last"] == r["tasks"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
