"""One scenario, in a process of its own: Django settings cannot change in a process.

``python -m bench.run SCENARIO --tasks N --out result.json`` recreates the store,
measures publishing with no worker running, then starts a worker and measures
end-to-end throughput. ``bench.cli`` runs this once per scenario and repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django

from bench import database, procstat, scenarios, worker
from bench.scenarios import Scenario

Worker = subprocess.Popen[bytes]

_POLL = 0.005
# A run fails when no task finishes for this long (a dead or stuck worker).
_STALL = 60.0
_STORE_TIMEOUT = 60.0


def _log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("scenario", choices=sorted(scenarios.SCENARIOS))
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tasktrail-bench"))
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so the worker is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    opts = _parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    scenario = scenarios.get(opts.scenario)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_SCENARIO"] = scenario.name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    database.recreate(scenario)
    django.setup()
    database.migrate(scenario)
    try:
        result = measure(scenario, opts.tasks, opts.warmup, opts.workdir)
    except KeyboardInterrupt:
        # The worker is already stopped (context manager); no traceback for a Ctrl-C.
        _log(f"{scenario.name}: interrupted")
        return 130
    finally:
        # A preloaded store keeps only its data set for the next run.
        database.forget_run(scenario)
    opts.out.write_text(json.dumps(result, indent=2))
    return 0


def measure(scenario: Scenario, tasks: int, warmup: int, workdir: Path) -> dict[str, Any]:
    from bench.celeryapp import app

    result: dict[str, Any] = {"scenario": scenario.name, "tasks": tasks, "warmup": warmup}
    result["task_cpu_ms"] = scenario.task_cpu_ms
    result["preloaded"] = database.preloaded(scenario)
    if scenario.backend == "tasktrail":
        import tasktrail

        result["tasktrail_file"] = tasktrail.__file__
    app.control.purge()
    _log("enqueue only (no worker running)")
    result.update(enqueue_only(scenario, tasks, warmup))
    app.control.purge()
    database.clear(scenario)
    log = workdir / f"worker-{scenario.name}.log"
    result["worker_log"] = str(log)
    try:
        with worker.running(f"bench-{scenario.name}", log) as proc:
            _log(f"worker pid {proc.pid}: warm-up ({warmup} tasks)")
            warm_up(scenario, warmup, proc)
            _log(f"end to end ({tasks} tasks)")
            result.update(end_to_end(scenario, tasks, warmup, proc))
    finally:
        app.control.purge()
    result.update(_flush_trace())
    return result


def send(count: int) -> float:
    """Publish ``count`` no-op tasks; the seconds it took."""
    from bench.celeryapp import noop

    start = time.perf_counter()
    for _ in range(count):
        noop.apply_async()
    return time.perf_counter() - start


def sync_store(scenario: Scenario) -> float:
    """Seconds until this process's buffered tasktrail writes (PENDING rows) are written."""
    if scenario.backend != "tasktrail":
        return 0.0
    from tasktrail import store

    start = time.perf_counter()
    if not store.sync(timeout=120):
        raise RuntimeError("tasktrail's buffer did not flush within 120 s")
    return time.perf_counter() - start


def enqueue_only(scenario: Scenario, tasks: int, warmup: int) -> dict[str, Any]:
    send(warmup)  # opens the broker connection and warms caches, untimed
    sync_store(scenario)
    seconds = send(tasks)
    durable = seconds + sync_store(scenario)
    pending = database.count(scenario, "PENDING")
    return {
        "enqueue_rate": tasks / seconds,
        # Until the PENDING rows are in the database, for tasktrail.
        "enqueue_durable_rate": tasks / durable,
        "pending_rows": pending - warmup if scenario.backend == "tasktrail" else None,
    }


def _counter() -> int:
    from bench.celeryapp import COUNTER_KEY, counter

    return int(counter().get(COUNTER_KEY) or 0)


def _reset_counter() -> None:
    from bench.celeryapp import COUNTER_KEY, counter

    counter().set(COUNTER_KEY, 0)


def wait_counter(target: int, proc: Worker) -> None:
    """Poll the Redis counter until ``target`` tasks ran; fail on a stall or a dead worker."""
    last, last_change = -1, time.monotonic()
    while (done := _counter()) < target:
        now = time.monotonic()
        if done != last:
            last, last_change = done, now
        elif now - last_change > _STALL:
            raise RuntimeError(f"stalled at {done}/{target} tasks for {_STALL:.0f} s")
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited after {done}/{target} tasks")
        time.sleep(_POLL)


def wait_store(scenario: Scenario, target: int) -> tuple[int, float]:
    """Poll the store until ``target`` rows are SUCCESS; the count and when it was seen."""
    deadline = time.perf_counter() + _STORE_TIMEOUT
    while True:
        found = database.count(scenario, "SUCCESS")
        now = time.perf_counter()
        if found >= target or now > deadline:
            return found, now
        time.sleep(2 * _POLL)


def warm_up(scenario: Scenario, warmup: int, proc: Worker) -> None:
    _reset_counter()
    send(warmup)
    wait_counter(warmup, proc)  # also waits for the worker to boot
    if scenario.counted:
        wait_store(scenario, warmup)
    time.sleep(0.5)  # let the worker go idle before the clock starts


def end_to_end(scenario: Scenario, tasks: int, warmup: int, proc: Worker) -> dict[str, Any]:
    history_mark = database.history_mark() if scenario.backend == "tasktrail" else 0
    _reset_counter()
    _reset_trace()
    cpu_before = procstat.snapshot(proc.pid)
    start = time.perf_counter()
    sent = send(tasks)
    wait_counter(tasks, proc)
    finished = time.perf_counter()
    cpu_after = procstat.snapshot(proc.pid)
    result: dict[str, Any] = {
        "loaded_enqueue_rate": tasks / sent,
        "e2e_rate": tasks / (finished - start),
        "cpu_ms_per_task": procstat.per_task_ms(cpu_before, cpu_after, tasks),
        "success_rows": None,
        "store_rate": None,
        "history_per_task": None,
    }
    if scenario.counted:
        found, seen = wait_store(scenario, tasks + warmup)
        result["success_rows"] = found - warmup
        result["store_rate"] = tasks / (seen - start)
        result["store_lag_ms"] = (seen - finished) * 1000
    if scenario.backend == "tasktrail":
        sync_store(scenario)
        result["history_per_task"] = database.history_since(history_mark) / tasks
    return result


def _reset_trace() -> None:
    if os.environ.get("BENCH_TRACE_DIR"):
        from bench import flushtrace

        flushtrace.reset()


def _flush_trace() -> dict[str, Any]:
    """Per-role flush timings, when the run traced them (the worker dumped at shutdown)."""
    directory = os.environ.get("BENCH_TRACE_DIR")
    if not directory:
        return {}
    from bench import flushtrace

    flushtrace.dump()
    return {"flushes": flushtrace.summarise(directory)}


if __name__ == "__main__":
    raise SystemExit(main())
