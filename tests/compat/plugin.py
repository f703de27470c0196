"""A pytest plugin for Celery's own integration suite: Django set up, a fresh database.

Loaded with ``-p tests.compat.plugin`` (see tests/compat/run.py). Celery's suite starts
its worker inside the test process (``celery.contrib.testing``), so the worker's pool
processes inherit what is set up here. pytest-django stays off (``-p no:django``): it
would refuse database access to Celery's unmarked tests.
"""

from __future__ import annotations

from typing import Any

import django
import pytest


def pytest_configure(config: Any) -> None:
    from django.db import connection

    django.setup()
    # Creates the test database (dropping a leftover one) and migrates it.
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    # The pool processes fork from this one: none may inherit an open connection.
    connection.close()


def pytest_unconfigure(config: Any) -> None:
    from django.db import connection

    if django.apps.apps.ready:
        connection.close()


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict[str, Any]:
    """The session worker gets a minute to answer its first ping, not Celery's 10 s.

    Why: on a loaded 2-core machine, three runs starting at once on RabbitMQ missed
    the 10 s, and the worker that failed to start kept its consumer: every later test's
    setup timed out too (django-db: 6 passed, 293 errors).
    """
    return {"ping_task_timeout": 60.0}
