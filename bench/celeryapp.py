"""The Celery app and the one task every scenario runs.

The task's only work is ``INCR`` on a Redis key: the producer polls that counter to
see when all tasks ran, the same way in every scenario, whatever the result store.
"""

from __future__ import annotations

import functools
import os

import redis
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "tasktrail-bench:done")

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
    counter().incr(COUNTER_KEY)
