"""``python -m bench.reads``: what reading a finished task costs, per result store.

For each store, in a process of its own (Django settings are per process): recreate
the store, start a real worker (prefork, 2 processes), send N tasks with
``delay()`` and wait until all finished, stop the worker, then time
``AsyncResult(id).status``, ``.result`` and ``.get()`` over every id, several passes
in a shuffled order, each call on a new ``AsyncResult`` (as a status page or a poll
does). Reported per store and operation: microseconds per call (p50, mean, p99), the
ratio to Celery's own Redis result backend, and the CPU per call of the reading
process and of the database or Redis server. Every read is checked once first
(untimed): a wrong state or value fails the run.

Stores: ``celery-redis`` (Celery's Redis result backend, ``result_extended``),
``dcr-postgres`` (django-celery-results on PostgreSQL, ``result_extended``),
``tasktrail-sqlite``, ``tasktrail-postgres``. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procstat, worker
from bench.celeryapp import app

OPS = ("status", "result", "get")
BASELINE = "celery-redis"
#: tasktrail's target for ``AsyncResult(id).status`` of a finished task (issue 15), p50.
TARGET_US = 300.0
QUICK_TASKS, QUICK_PASSES = 200, 2
_FILL_TIMEOUT = 300.0
_GET_TIMEOUT = 10.0


@app.task(name="bench.reads.value")
def value(i: int) -> dict[str, Any]:
    """A result as a site's task might return one: a small dict."""
    return expected(i)


def expected(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True, "items": [i, i + 1, i + 2], "label": f"item {i}"}


@dataclasses.dataclass(frozen=True, slots=True)
class Store:
    name: str
    #: The scenario of bench/scenarios.py whose database and settings it uses.
    scenario: str
    #: Celery's Redis result backend instead of the scenario's (bench/reads_settings.py).
    redis_results: bool
    note: str


STORES: dict[str, Store] = {
    s.name: s
    for s in (
        Store(BASELINE, "celery-ignore", True, "Celery's Redis result backend, result_extended"),
        Store(
            "dcr-postgres",
            "dcr-postgres",
            False,
            "django-celery-results on PostgreSQL, result_extended",
        ),
        Store("tasktrail-sqlite", "tasktrail-sqlite", False, "tasktrail backend, SQLite WAL"),
        Store("tasktrail-postgres", "tasktrail-postgres", False, "tasktrail backend, PostgreSQL"),
    )
}


def _log(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reads",
        description="AsyncResult(id).status, .result and .get() of finished tasks, "
        "per result store, side by side.",
    )
    parser.add_argument("--tasks", type=int, default=2000, help="finished tasks (ids) per store")
    parser.add_argument("--passes", type=int, default=3, help="reads of every id per operation")
    parser.add_argument("--repeat", type=int, default=1, help="runs per store (median)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_TASKS} tasks, {QUICK_PASSES} passes",
    )
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(STORES)}")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/15",
        help="where celery-redis stores results (its keys are deleted after the run)",
    )
    parser.add_argument("--queue", default=os.environ.get("BENCH_QUEUE", "tasktrail-bench-reads"))
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tasktrail-bench"
    )
    parser.add_argument("--pg-db", default="tasktrail_bench_reads", help="dropped and recreated")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before each store, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument("--src", type=Path, help="import tasktrail from this directory")
    parser.add_argument(
        "--tasktrail-settings", default="{}", help="JSON merged into TASKTRAIL (experiments)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed reads, profile the status reads (cProfile) into the workdir",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=sorted(STORES), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.passes = QUICK_TASKS, QUICK_PASSES
    if args.tasks < 1 or args.passes < 1 or args.repeat < 1:
        parser.error("--tasks, --passes and --repeat must be at least 1")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(STORES)
    unknown = [n for n in names if n not in STORES]
    if unknown:
        parser.error(f"unknown store(s) {', '.join(unknown)}; known: {', '.join(STORES)}")
    args.stores = names
    return args


# -- one store, in a child process ----------------------------------------------------


def _child(args: argparse.Namespace) -> int:
    import django

    from bench import database, scenarios

    store = STORES[args.child]
    scenario = scenarios.get(store.scenario)
    args.workdir.mkdir(parents=True, exist_ok=True)
    database.recreate(scenario)
    django.setup()
    database.migrate(scenario)
    app.control.purge()
    log = args.workdir / f"worker-reads-{store.name}.log"
    ids: list[str] = []
    try:
        with worker.running(f"bench-reads-{store.name}", log) as proc:
            _log(f"{store.name}: worker pid {proc.pid}, {args.tasks} tasks (log {log})")
            ids = fill(args.tasks, proc)
        # The worker is stopped: the reads meet a store nothing else writes to.
        result = measure(store, ids, args.passes)
        if args.profile:
            result["profile"] = profile(store, ids, args.workdir)
    finally:
        app.control.purge()
        if store.redis_results:
            _delete_redis_results(ids)
    result["worker_log"] = str(log)
    args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["wrong"] == 0 else 1


def fill(count: int, proc: subprocess.Popen[bytes]) -> list[str]:
    """Send ``count`` tasks to the real worker and wait until every one finished."""
    from celery.result import AsyncResult

    ids = [value.delay(i).id for i in range(count)]
    deadline = time.monotonic() + _FILL_TIMEOUT
    waiting = ids
    while waiting:
        waiting = [t for t in waiting if not AsyncResult(t, app=app).ready()]
        if not waiting:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {len(waiting)} of {count} tasks unfinished")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} of {count} unfinished after {_FILL_TIMEOUT} s")
        time.sleep(0.2)
    return ids


def _operations() -> dict[str, Callable[[str], Any]]:
    from celery.result import AsyncResult

    # A new AsyncResult per call: it caches a ready task's meta, which is not a read.
    return {
        "status": lambda task_id: AsyncResult(task_id, app=app).status,
        "result": lambda task_id: AsyncResult(task_id, app=app).result,
        "get": lambda task_id: AsyncResult(task_id, app=app).get(timeout=_GET_TIMEOUT),
    }


def check(ids: list[str]) -> int:
    """Read every id once with each operation (untimed); how many answers are wrong."""
    ops = _operations()
    wrong = 0
    for i, task_id in enumerate(ids):
        want = expected(i)
        answers = (ops["status"](task_id), ops["result"](task_id), ops["get"](task_id))
        wrong += answers != ("SUCCESS", want, want)
    return wrong


def measure(store: Store, ids: list[str], passes: int) -> dict[str, Any]:
    wrong = check(ids)  # also the warm-up: connections, caches, imports
    _log(f"{store.name}: {wrong} wrong answers of {len(ids)}; timing {len(ids) * passes} calls/op")
    ops = _operations()
    found: dict[str, Any] = {}
    for name in OPS:
        order = [t for p in range(passes) for t in random.Random(p).sample(ids, len(ids))]
        found[name] = _time(ops[name], order)
    return {"store": store.name, "tasks": len(ids), "passes": passes, "wrong": wrong, "ops": found}


def _time(op: Callable[[str], Any], order: list[str]) -> dict[str, Any]:
    clock = time.perf_counter_ns
    took: list[int] = []
    before = procstat.snapshot(None)
    cpu = time.process_time()
    for task_id in order:
        start = clock()
        op(task_id)
        took.append(clock() - start)
    cpu = time.process_time() - cpu
    after = procstat.snapshot(None)
    calls = len(order)
    parties = procstat.per_task_ms(before, after, calls)
    took.sort()
    return {
        "calls": calls,
        "p50_us": took[calls // 2] / 1000,
        "mean_us": sum(took) / calls / 1000,
        "p99_us": took[min(calls - 1, calls * 99 // 100)] / 1000,
        # CPU of this process per call, and of the servers (ms per call -> us).
        "cpu_us": {
            "reader": cpu * 1e6 / calls,
            "postgres": parties.get("postgres", 0.0) * 1000,
            "redis": parties.get("redis", 0.0) * 1000,
        },
        "noise": round(procstat.others_share(parties), 3),
    }


def profile(store: Store, ids: list[str], workdir: Path) -> dict[str, Any]:
    """cProfile of one pass of status reads: the file, and the top functions by own time."""
    op = _operations()["status"]
    profiler = cProfile.Profile()
    profiler.enable()
    for task_id in ids:
        op(task_id)
    profiler.disable()
    path = workdir / f"reads-{store.name}-status.prof"
    profiler.dump_stats(path)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(30)
    _log(f"{store.name}: profile of {len(ids)} status reads in {path}\n{text.getvalue()}")
    return {"file": str(path), "calls": len(ids)}


def _delete_redis_results(ids: list[str]) -> None:
    backend: Any = app.backend
    keys = [backend.get_key_for_task(t) for t in ids]
    for start in range(0, len(keys), 500):
        backend.client.delete(*keys[start : start + 500])


# -- the side-by-side run --------------------------------------------------------------


def _env(args: argparse.Namespace, store: Store) -> dict[str, str]:
    env = {
        **os.environ,
        "BENCH_SCENARIO": store.scenario,
        "DJANGO_SETTINGS_MODULE": "bench.reads_settings",
        "BENCH_BROKER": args.broker,
        "BENCH_REDIS": args.redis,
        "BENCH_QUEUE": args.queue,
        "BENCH_PG_NAME": args.pg_db,
        "BENCH_SQLITE_PATH": str(args.workdir / "tasktrail-bench-reads.sqlite3"),
        "BENCH_TASKTRAIL": args.tasktrail_settings,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (args.src, worker.ROOT) if p),
    }
    env.pop("BENCH_READS_BACKEND", None)
    env.pop("BENCH_TRACE_DIR", None)
    if store.redis_results:
        env["BENCH_READS_BACKEND"] = args.redis
    return env


def run_one(args: argparse.Namespace, store: Store, index: int) -> dict[str, Any]:
    out = args.workdir / f"reads-{index}-{store.name}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.reads", "--child", store.name, "--out", str(out)]
    command += ["--tasks", str(args.tasks), "--passes", str(args.passes)]
    command += ["--workdir", str(args.workdir)]
    if args.profile:
        command.append("--profile")
    code = subprocess.call(command, env=_env(args, store), cwd=worker.ROOT)
    if not out.exists():
        return {"store": store.name, "error": f"exit code {code}"}
    result: dict[str, Any] = json.loads(out.read_text())
    if code != 0:
        result["error"] = f"exit code {code} ({result.get('wrong')} wrong answers)"
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every store, ``--repeat`` times interleaved; the config, summary and every run."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = _config(args)
    plan = [name for _ in range(args.repeat) for name in args.stores]
    runs: list[dict[str, Any]] = []
    try:
        for index, name in enumerate(plan, start=1):
            print(f"[reads {index}/{len(plan)}] {name}", file=sys.stderr, flush=True)
            busy = procstat.wait_idle(args.wait_idle, _log)
            result = run_one(args, STORES[name], index)
            result["busy_before"] = round(busy, 3)
            runs.append(result)
    except KeyboardInterrupt:
        print("interrupted; reporting the stores that finished", file=sys.stderr)
    config["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return {"config": config, "summary": summarise(runs), "runs": runs}


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per store and operation: medians over the store's runs, ratios to celery-redis."""
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["store"] for r in runs):
        ok = [r for r in runs if r["store"] == name and "error" not in r]
        row: dict[str, Any] = {"runs": len(ok), "failed": sum(r["store"] == name for r in runs)}
        row["failed"] -= len(ok)
        for op in OPS if ok else ():
            mine = [r["ops"][op] for r in ok]
            row[op] = {
                key: statistics.median(m[key] for m in mine)
                for key in ("p50_us", "mean_us", "p99_us", "noise")
            }
            row[op]["cpu_us"] = {
                party: statistics.median(m["cpu_us"][party] for m in mine)
                for party in mine[0]["cpu_us"]
            }
        summary[name] = row
    base = summary.get(BASELINE, {})
    for row in summary.values():
        for op in OPS:
            if op not in row:
                continue
            for key in ("p50_us", "mean_us"):
                reference = base.get(op, {}).get(key)
                row[op][f"{key}_ratio"] = row[op][key] / reference if reference else None
    return summary


def _config(args: argparse.Namespace) -> dict[str, Any]:
    source = "installed"
    if args.src is not None:
        source = str(args.src.resolve())
    elif (described := procstat.git_describe()) is not None:
        source = f"installed, git {described}"
    return {
        "tasks": args.tasks,
        "passes": args.passes,
        "repeat": args.repeat,
        "stores": args.stores,
        "broker": args.broker,
        "tasktrail_source": source,
        "tasktrail_settings": json.loads(args.tasktrail_settings),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _target(name: str, op: str, figures: dict[str, Any]) -> str:
    if not name.startswith("tasktrail") or op != "status":
        return ""
    met = figures["p50_us"] <= TARGET_US
    return f"<= {TARGET_US:.0f} us {'met' if met else 'MISSED'}"


def render(payload: dict[str, Any]) -> str:
    config, summary = payload["config"], payload["summary"]
    head = (
        f"tasktrail reads: AsyncResult(id).<op> of {config['tasks']} finished tasks x "
        f"{config['passes']} passes per op, median of {config['repeat']} run(s) per store, "
        f"{config['cpus']} CPUs, Python {config['python']}\n"
        f"tasktrail: {config['tasktrail_source']}\n"
        f"load average before {config['load_before']}, after {config.get('load_after')}\n"
        f"xredis = ratio to {BASELINE} (Celery's Redis result backend)\n"
    )
    header = ["store", "op", "p50 us", "mean us", "p99 us", "xredis p50", "xredis mean"]
    header += ["CPU us reader", "CPU us server", "others", "target (p50)"]
    rows: list[list[str]] = []
    for name, row in summary.items():
        if row["runs"] == 0:
            rows.append([name, "failed", *[""] * (len(header) - 2)])
            continue
        for op in OPS:
            figures = row[op]
            cpu = figures["cpu_us"]
            server = cpu["redis"] if name == BASELINE else cpu["postgres"]
            rows.append(
                [
                    name,
                    op,
                    f"{figures['p50_us']:.0f}",
                    f"{figures['mean_us']:.0f}",
                    f"{figures['p99_us']:.0f}",
                    _cell(figures["p50_us_ratio"], "{:.2f}x"),
                    _cell(figures["mean_us_ratio"], "{:.2f}x"),
                    f"{cpu['reader']:.0f}",
                    "-" if name == "tasktrail-sqlite" else f"{server:.0f}",
                    f"{figures['noise']:.0%}",
                    _target(name, op, figures),
                ]
            )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs).rstrip()

    table = [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]
    foot = (
        "\nus: wall time per call in the reading process (a new AsyncResult per call, the "
        "store's connection\nalready open); CPU us reader: that process's CPU per call; CPU "
        "us server: PostgreSQL's (Redis' for\ncelery-redis; SQLite runs in the reader); "
        "others: share of the machine's busy CPU other processes took."
    )
    return head + "\n".join(table) + foot


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return _child(args)
    payload = run(args)
    payload["config"]["command"] = shlex.join(
        ["python", "-m", "bench.reads", *(sys.argv[1:] if argv is None else argv)]
    )
    print(render(payload))
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if any("error" in r for r in payload["runs"]) or not payload["runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
