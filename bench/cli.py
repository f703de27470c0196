"""``python -m bench``: run the scenarios side by side and report the ratios."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat, report, worker
from bench.scenarios import PRELOAD_TASKS, SCENARIOS, SLOW

QUICK_TASKS = 300
QUICK_WARMUP = 50
#: The reads section (bench/reads.py), selected with the scenarios by ``--only``.
READS = "reads"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Celery no-op throughput with each result store, side by side.",
    )
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per measurement")
    parser.add_argument("--warmup", type=int, default=200, help="untimed tasks first")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (median)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_TASKS} tasks")
    parser.add_argument(
        "--only", default="", help=f"comma-separated, of: {', '.join([*SCENARIOS, READS])}"
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/15", help="Redis for the completion counter"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tasktrail-bench"
    )
    parser.add_argument("--pg-db", default="tasktrail_bench", help="dropped and recreated")
    parser.add_argument(
        "--preload-db",
        default="tasktrail_bench_10m",
        help="the preloaded scenarios' database: loaded once, kept while it holds the data set",
    )
    parser.add_argument(
        "--preload-tasks",
        type=int,
        default=PRELOAD_TASKS,
        help="tasks in the preloaded store (a smaller data set for a trial run)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before each run, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument(
        "--retry-noisy",
        type=int,
        default=2,
        help=f"run again (up to N times) when others took > {procstat.NOISY * 100:g} %% CPU",
    )
    parser.add_argument(
        "--src",
        type=Path,
        help="import tasktrail from this directory (e.g. a snapshot of a commit's src/) "
        "instead of the installed one, so edits made during a run do not leak into it",
    )
    parser.add_argument(
        "--tasktrail-settings", default="{}", help="JSON merged into TASKTRAIL (experiments)"
    )
    parser.add_argument(
        "--trace-flushes", action="store_true", help="time each tasktrail flush (profiling)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.warmup = QUICK_TASKS, QUICK_WARMUP
    args.scenarios = _selected(parser, args.only, args.quick)
    return args


def _selected(parser: argparse.ArgumentParser, only: str, quick: bool = False) -> list[str]:
    known = [*SCENARIOS, READS]
    # A smoke run does not load 10 M tasks (minutes) unless asked to by name.
    everything = [n for n in known if not (quick and n in SLOW)]
    names = [n.strip() for n in only.split(",") if n.strip()] or everything
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _env(args: argparse.Namespace, scenario: str, trace_dir: Path | None) -> dict[str, str]:
    env = {
        **os.environ,
        "BENCH_SCENARIO": scenario,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_BROKER": args.broker,
        "BENCH_REDIS": args.redis,
        "BENCH_PG_NAME": args.preload_db if SCENARIOS[scenario].preload else args.pg_db,
        "BENCH_PRELOAD_TASKS": str(args.preload_tasks),
        "BENCH_SQLITE_PATH": str(args.workdir / "tasktrail-bench.sqlite3"),
        "BENCH_TASKTRAIL": args.tasktrail_settings,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (args.src, worker.ROOT) if p),
    }
    env.pop("BENCH_TRACE_DIR", None)
    if trace_dir is not None:
        env["BENCH_TRACE_DIR"] = str(trace_dir)
    return env


def run_one(args: argparse.Namespace, scenario: str, index: int) -> dict[str, Any]:
    """Run one scenario in a child process (its own Django settings); its result."""
    out = args.workdir / f"result-{index}-{scenario}.json"
    out.unlink(missing_ok=True)
    trace_dir = args.workdir / f"trace-{index}-{scenario}" if args.trace_flushes else None
    command = [sys.executable, "-m", "bench.run", scenario, "--tasks", str(args.tasks)]
    command += ["--warmup", str(args.warmup), "--workdir", str(args.workdir), "--out", str(out)]
    proc = subprocess.Popen(command, env=_env(args, scenario, trace_dir), cwd=worker.ROOT)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # The child got the same Ctrl-C and is stopping its worker: let it finish.
        _wait_or_kill(proc)
        raise
    if code != 0 or not out.exists():
        return {"scenario": scenario, "error": f"exit code {code}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _wait_or_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the child still stops its worker
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        proc.kill()
        proc.wait()


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "tasks": args.tasks,
        "warmup": args.warmup,
        "repeat": args.repeat,
        "broker": args.broker,
        "scenarios": args.scenarios,
        "worker": " ".join(worker.command("bench-<scenario>")[1:]),
        "tasktrail_settings": json.loads(args.tasktrail_settings),
        "preload_tasks": args.preload_tasks,
        "tasktrail_source": _source(args.src),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, name: str, index: int) -> list[dict[str, Any]]:
    """One run of a scenario, run again while others' load spoiled it; every attempt."""
    attempts: list[dict[str, Any]] = []
    for _ in range(1 + args.retry_noisy):
        busy = procstat.wait_idle(args.wait_idle, _log)
        result = run_one(args, name, index)
        result["busy_before"] = round(busy, 3)
        result["noise"] = round(procstat.others_share(result.get("cpu_ms_per_task") or {}), 3)
        attempts.append(result)
        if "error" in result or result["noise"] <= procstat.NOISY:
            break
        print(f"  noisy ({result['noise']:.0%} of the CPU was others'); again", file=sys.stderr)
    return attempts


def _source(src: Path | None) -> str:
    """Which tasktrail was measured: a directory given, or the installed tree's commit."""
    if src is not None:
        return str(src.resolve())
    described = procstat.git_describe()
    if described is None:
        return "installed"
    return f"installed, git {described}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    with_reads = READS in args.scenarios
    args.scenarios = [name for name in args.scenarios if name != READS]
    config = _config(args)
    plan = [name for _ in range(args.repeat) for name in args.scenarios]
    runs: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    try:
        # Repeats interleave the scenarios, so a slow minute on the machine is shared.
        for index, name in enumerate(plan, start=1):
            print(f"[{index}/{len(plan)}] {name}", file=sys.stderr, flush=True)
            *spoiled, kept = measure(args, name, index)
            runs.append(kept)
            discarded += spoiled
        reads = _reads(args) if with_reads else None
    except KeyboardInterrupt:
        print("interrupted; reporting the runs that finished", file=sys.stderr)
        reads = None
    if not runs and reads is None:
        return 130
    payload: dict[str, Any] = {"config": config}
    if runs:
        summary = report.summarise(runs)
        print(report.render(summary, config))
        payload.update(summary=summary, runs=runs, discarded_noisy_runs=discarded)
    if reads is not None:
        from bench import reads as reads_bench

        print(("\n" if runs else "") + reads_bench.render(reads))
        payload["reads"] = reads
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    read_runs = [] if reads is None else reads["runs"]
    return 1 if any("error" in r for r in [*runs, *read_runs]) else 0


def _reads(args: argparse.Namespace) -> dict[str, Any]:
    """The reads section (``python -m bench.reads``, every store) with this run's options."""
    from bench import reads

    argv = ["--broker", args.broker, "--redis", args.redis, "--workdir", str(args.workdir)]
    argv += ["--pg-db", args.pg_db, "--repeat", str(args.repeat)]
    argv += ["--wait-idle", str(args.wait_idle), "--tasktrail-settings", args.tasktrail_settings]
    argv += ["--quick"] if args.quick else []
    argv += ["--src", str(args.src)] if args.src else []
    return reads.run(reads.parse(argv))
