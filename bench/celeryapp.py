"""The Celery app, the one task every scenario runs, and the progress bench's task.

The no-op task's only work is ``INCR`` on a Redis key: the producer polls that counter to
see when all tasks ran, the same way in every scenario, whatever the result store. In the
``-5ms`` scenarios (``Scenario.task_cpu_ms``) it first burns that much CPU: the same
message, the same task, only the work differs.
"""

from __future__ import annotations

import functools
import os
import time

import redis
from celery import Celery

from bench import scenarios

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "tasktrail-bench:done")
#: CPU seconds the task burns (the worker reads the same BENCH_SCENARIO as the producer).
TASK_CPU_S = scenarios.get(os.environ.get("BENCH_SCENARIO", scenarios.BASELINE)).task_cpu_ms / 1000
BARRIER_KEY = COUNTER_KEY + ":progress-barrier"

app = Celery("bench")
app.config_from_object("django.conf:settings", namespace="CELERY")

if os.environ.get("BENCH_TRACE_DIR"):
    from bench import flushtrace

    flushtrace.install(os.environ["BENCH_TRACE_DIR"])


@functools.cache
def counter() -> redis.Redis:
    # One client per process; redis-py opens a fresh connection after a fork.
    return redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15"))


@app.task(name="bench.noop")
def noop() -> None:
    if TASK_CPU_S:
        burn(TASK_CPU_S)
    counter().incr(COUNTER_KEY)


def burn(seconds: float) -> None:
    """Keep this thread on the CPU for ``seconds`` of its own CPU time (not wall time:
    on a busy machine the task still does the same work)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


@app.task(name="bench.progress_loop")
def progress_loop(calls: int, via: str, start_when: int = 0) -> tuple[float, float]:
    """Report progress ``calls`` times as fast as it can; when its loop began and ended.

    ``via`` is ``"progress"`` (``tasktrail.progress()``) or ``"reporter"`` (a reporter
    captured first). With ``start_when``, the loop waits until that many tasks arrived
    (a Redis counter), so the tasks of a pool run their loops at the same time.
    """
    import tasktrail

    if start_when:
        _barrier(start_when)
    report = tasktrail.reporter() if via == "reporter" else tasktrail.progress
    began = time.perf_counter()
    for done in range(1, calls + 1):
        report(done, calls)
    return began, time.perf_counter()


def _barrier(parties: int, timeout: int = 60) -> None:
    # Blocking pops, not polling: waiting tasks take no CPU from those already looping.
    if counter().incr(BARRIER_KEY) == parties:
        counter().rpush(BARRIER_KEY + ":go", *range(parties))
    counter().blpop([BARRIER_KEY + ":go"], timeout)


@app.task(name="bench.chord_part")
def chord_part(i: int) -> int:
    """A chord's header task: notes when it ended (the chord bench's clock)."""
    counter().zadd(COUNTER_KEY + ":ended", {str(i): time.time()})
    return i


@app.task(name="bench.chord_callback")
def chord_callback(values: list[int]) -> float:
    """A chord's callback: when it started."""
    return time.time()
