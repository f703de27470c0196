"""Django settings of the reads bench (``python -m bench.reads``): a scenario's, plus
the bench's task, plus, for ``celery-redis``, Celery's Redis result backend.

``BENCH_SCENARIO`` picks the store as for ``python -m bench`` (bench/settings.py);
``BENCH_READS_BACKEND`` (a Redis URL) replaces the result backend by Celery's own
Redis backend, on the baseline scenario (no database, tasktrail not installed).
"""

from __future__ import annotations

import os

from bench.settings import *  # noqa: F403

# The worker imports the bench's task (bench.reads.value) from here.
CELERY_IMPORTS = ("bench.reads",)

_REDIS_RESULTS = os.environ.get("BENCH_READS_BACKEND")
if _REDIS_RESULTS:
    CELERY_RESULT_BACKEND = _REDIS_RESULTS
    CELERY_TASK_IGNORE_RESULT = False
    # The same fields in its meta as tasktrail's and django-celery-results' (which the
    # bench runs with result_extended): name, args, kwargs, worker, retries, queue.
    CELERY_RESULT_EXTENDED = True
    # The bench deletes its keys after the run; this bounds what an interrupted run leaves.
    CELERY_RESULT_EXPIRES = 3600
