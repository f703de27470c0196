"""``python -m bench.chords``: a chord's cost with tasktrail's native join and with
Celery's ``chord_unlock`` polling, on the same worker, broker and store.

For each mode (``native``: ``CELERY_RESULT_BACKEND = "tasktrail"``; ``unlock``: the same
backend with the native join switched off, so Celery falls back to its polling task)
this starts a real worker (prefork, 2 processes) and runs ``--chords`` chords of
``--size`` header tasks, one after another, and reports per chord:

- latency: from the last header task's end to the callback's start (both stamped with
  ``time.time()`` in the worker's processes);
- polls: runs of ``celery.chord_unlock`` (each re-reads the header's results; a run
  that finds them not ready retries itself after ``countdown``, 1 s);
- store reads of header results: every poll reads each header task's record once
  (``GroupResult.ready()``), the native join reads them once (``GroupResult.join()``)
  and adds one counter ``UPDATE`` per header task.

Nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from celery.backends.base import BaseBackend

from tasktrail.celery.backend import TaskTrailBackend

ROOT = Path(__file__).resolve().parent.parent
MODES = ("native", "unlock")


class UnlockBackend(TaskTrailBackend):
    """tasktrail without its native chord join: Celery's own fallback (chord_unlock)."""

    apply_chord = BaseBackend.apply_chord
    on_chord_part_return = BaseBackend.on_chord_part_return
    set_chord_size = BaseBackend.set_chord_size


def run_mode(mode: str, chords: int, size: int) -> dict[str, Any]:
    """In a child process: Django settings (the backend) are per process."""
    import subprocess

    env = {
        **os.environ,
        "BENCH_SCENARIO": "tasktrail-sqlite",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_SQLITE_PATH": f"/tmp/tasktrail-bench-chords-{mode}.sqlite3",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    if mode == "unlock":
        env["BENCH_CHORD_UNLOCK"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "bench.chords", "--child", mode, "--chords", str(chords),
         "--size", str(size)],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    import json

    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child(mode: str, chords: int, size: int) -> dict[str, Any]:
    import django

    django.setup()
    from celery import chord

    from bench import database, scenarios, worker
    from bench.celeryapp import COUNTER_KEY, app, chord_callback, chord_part, counter
    from tasktrail.models import Task

    scenario = scenarios.get("tasktrail-sqlite")
    database.recreate(scenario)
    database.migrate(scenario)
    app.control.purge()
    latencies: list[float] = []
    log = Path(f"/tmp/tasktrail-bench-chords-{mode}.log")
    with worker.running(f"chords-{mode}", log):
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; see {log}")
        for _ in range(chords):
            counter().delete(COUNTER_KEY + ":ended")
            result = chord(chord_part.s(i) for i in range(size))(chord_callback.s())
            started = result.get(timeout=120, interval=0.01)
            ended = max(
                s for _, s in counter().zrange(COUNTER_KEY + ":ended", 0, -1, withscores=True)
            )
            latencies.append(started - ended)
    unlock = Task.objects.filter(name="celery.chord_unlock")
    # A poll that found the header not ready retried itself: each run is an attempt.
    polls = sum(t.attempt for t in unlock)
    return {
        "mode": mode,
        "chords": chords,
        "size": size,
        "latency_p50": statistics.median(latencies),
        "latency_max": max(latencies),
        "polls_per_chord": polls / chords,
        "header_reads_per_chord": polls * size / chords if mode == "unlock" else size,
        "counter_updates_per_chord": size if mode == "native" else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chords", type=int, default=10)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import json

        print(json.dumps(child(args.child, args.chords, args.size)))
        return 0
    rows = [run_mode(mode, args.chords, args.size) for mode in MODES]
    print(f"{args.chords} chords of {args.size} header tasks + a callback, one at a time")
    print(f"{'mode':<8} {'latency p50':>12} {'max':>8} {'polls/chord':>12} "
          f"{'header reads/chord':>19} {'counter UPDATEs':>16}")  # fmt: skip
    for r in rows:
        p50, peak = r["latency_p50"] * 1000, r["latency_max"] * 1000
        polls, reads = r["polls_per_chord"], r["header_reads_per_chord"]
        print(f"{r['mode']:<8} {p50:>10.0f} ms {peak:>5.0f} ms {polls:>12.1f} "
              f"{reads:>19.1f} {r['counter_updates_per_chord']:>16}")  # fmt: skip
    native, unlock = rows
    ratio = unlock["latency_p50"] / max(native["latency_p50"], 1e-6)
    print(f"\nlatency, unlock / native: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
