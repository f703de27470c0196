"""Django settings for one benchmark scenario, chosen by ``BENCH_SCENARIO``.

The producer (``bench.run``) and its worker read the same environment, so both
sides of a scenario see the same store. Nothing here is tuned per scenario
beyond what each result store needs to run as documented.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench import scenarios
from bench.database import django_postgres

_SCENARIO = scenarios.get(os.environ.get("BENCH_SCENARIO", scenarios.BASELINE))

SECRET_KEY = "bench-only"
# DEBUG would keep every query in memory and slow the ORM paths down.
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = list(_SCENARIO.apps)


def _databases() -> dict[str, dict[str, Any]]:
    if _SCENARIO.store == "postgres":
        return {"default": django_postgres(os.environ.get("BENCH_PG_NAME", "tasktrail_bench"))}
    if _SCENARIO.store == "sqlite":
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("BENCH_SQLITE_PATH", "/tmp/tasktrail-bench.sqlite3"),
                # What Django's docs advise for several writer processes.
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 20,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        }
    # The baseline touches no database; Django falls back to its dummy backend.
    return {}


DATABASES = _databases()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CELERY_BROKER_URL = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A queue of our own, so no other worker on the same broker takes our tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_QUEUE", "tasktrail-bench")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the task thread's connections before and after every
# task unless this is set, so django-celery-results connects anew for each task.
if _SCENARIO.db_reuse_max:
    CELERY_DB_REUSE_MAX = _SCENARIO.db_reuse_max

if _SCENARIO.backend == "none":
    CELERY_TASK_IGNORE_RESULT = True
elif _SCENARIO.backend == "django-db":
    CELERY_RESULT_BACKEND = "django-db"
    # What it takes for django-celery-results to show STARTED and the task's details.
    CELERY_TASK_TRACK_STARTED = True
    CELERY_RESULT_EXTENDED = True
elif _SCENARIO.backend == "null":
    CELERY_RESULT_BACKEND = "bench.nullbackend:NullBackend"
elif _SCENARIO.backend == "redis":
    # Celery's Redis backend as its docs set it up: a URL, nothing else.
    CELERY_RESULT_BACKEND = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
else:
    CELERY_RESULT_BACKEND = "tasktrail"
    if _SCENARIO.ignore_result:
        # Celery stores no outcome; tasktrail's task signals record it (without a value).
        CELERY_TASK_IGNORE_RESULT = True
    if os.environ.get("BENCH_CHORD_UNLOCK"):
        # bench/chords.py: tasktrail without its native chord join (Celery's polling).
        CELERY_RESULT_BACKEND = "bench.chords:UnlockBackend"
    # Defaults unless an experiment overrides some (``--tasktrail-settings``).
    TASKTRAIL = json.loads(os.environ.get("BENCH_TASKTRAIL", "{}"))
