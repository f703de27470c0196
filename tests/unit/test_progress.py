"""tasktrail.progress() in a task applied in this process (Celery's eager mode).

Eager mode sends the same prerun and postrun signals as a worker, so the coalescing,
the thread rules and the input checks are the real ones; tests/integration/test_live.py
repeats the essentials in a real worker.
"""

from __future__ import annotations

import math
import threading

import pytest

import tasktrail
from tasktrail import store
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_flood_of_reports_ends_with_the_last_value_stored() -> None:
    result = tasks.reports.apply(args=(100_000,))
    assert result.get() == 100_000
    store.sync()
    progress = tasktrail.get(result.id).progress
    assert progress is not None
    assert (progress.current, progress.total, progress.message) == (
        100_000,
        100_000,
        "100000 of 100000",
    )
    assert progress.percent == 100


def test_meta_is_stored_with_the_progress() -> None:
    result = tasks.reports.apply(args=(3,), kwargs={"rows": 7, "file": "a.csv"})
    result.get()
    store.sync()
    progress = tasktrail.get(result.id).progress
    assert progress is not None and progress.meta == {"rows": 7, "file": "a.csv"}


def test_meta_that_is_not_json_fails_at_the_call() -> None:
    result = tasks.reports.apply(args=(1,), kwargs={"handle": threading.Lock()})
    with pytest.raises(tasktrail.PayloadError, match="progress meta must be JSON values"):
        result.get()


@pytest.mark.parametrize("bad", [math.nan, math.inf, "3", True, [1]])
def test_progress_must_be_a_finite_number(bad: object) -> None:
    result = tasks.reports.apply(args=(1,), kwargs={"current": bad})
    with pytest.raises(tasktrail.PayloadError, match="finite number"):
        result.get()


def test_outside_a_task_progress_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="while a Celery task runs"):
        tasktrail.progress(1, 2)
    with pytest.raises(RuntimeError, match="while a Celery task runs"):
        tasktrail.reporter()


def test_threads_the_task_starts_report_for_it() -> None:
    result = tasks.progress_from_threads.apply()
    assert result.get() == "reported"
    store.sync()
    progress = tasktrail.get(result.id).progress
    assert progress is not None and (progress.current, progress.message) == (2, "captured")
