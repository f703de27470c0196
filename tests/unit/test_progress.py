"""tasktrail.progress() in a task applied in this process (Celery's eager mode).

Eager mode sends the same prerun and postrun signals as a worker, so the coalescing,
the thread rules and the input checks are the real ones; tests/integration/test_live.py
repeats the essentials in a real worker.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from celery import shared_task

import tasktrail
from tasktrail import conf, store
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


# Under contention: many tasks in one process at once, as in a threads pool (each
# thread applies a task, with the same prerun and postrun signals as a worker thread;
# store_eager_result records the outcome through the backend, as a worker does, so
# SUCCESS below also says the last progress was drained before it).
TASKS = 50
CALLS = 2000
_WAIT = 30.0
_barriers: dict[str, threading.Barrier] = {}
_events: dict[str, threading.Event] = {}
_kept: dict[str, tasktrail.Reporter] = {}


@shared_task(store_eager_result=True)
def report_together(index: int, via: str, barrier: str) -> None:
    """Waits for all the others, then reports ``CALLS`` times from its own thread."""
    _barriers[barrier].wait(_WAIT)
    report = tasktrail.reporter() if via == "reporter" else tasktrail.progress
    for done in range(1, CALLS + 1):
        report(done, CALLS, f"task {index}")


@shared_task(store_eager_result=True)
def report_from_a_thread(index: int, barrier: str) -> str:
    """All tasks running: a thread it starts reports, plainly (refused) and captured."""
    report = tasktrail.reporter()
    _barriers[barrier].wait(_WAIT)
    outcome: list[str] = []

    def run() -> None:
        try:
            tasktrail.progress(0)
        except RuntimeError as exc:
            outcome.append(str(exc))
        for done in range(1, CALLS + 1):
            report(done, CALLS, f"task {index}")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    # Every thread has reported before any task ends.
    _barriers[barrier].wait(_WAIT)
    return outcome[0] if outcome else "not refused"


@shared_task(store_eager_result=True)
def report_then_wait(key: str) -> None:
    """Reports, waits until the test saw it stored, twice, the second after a quiet spell."""
    for step in (1, 2):
        tasktrail.progress(step, 2, f"step {step}")
        if not _events[f"{key}-{step}"].wait(_WAIT):
            raise AssertionError(f"step {step} was never written while the task ran")
        # Longer than the writer's interval: it goes back to waiting for a report.
        time.sleep(3 * conf.get().PROGRESS_INTERVAL.total_seconds())


@shared_task(store_eager_result=True)
def keep_reporter(key: str, value: int) -> None:
    """Reports through the reporter kept from an earlier run of this id (if any), then its own."""
    earlier = _kept.get(key)
    if earlier is not None:
        with pytest.raises(RuntimeError, match="is not running in this process"):
            earlier(99, 99, "from the earlier run")
    _kept[key] = tasktrail.reporter()
    _kept[key](value, 99, f"run {value}")


def _apply_at_once(count: int, apply: Callable[[int], Any]) -> list[Any]:
    """``apply(i)`` in ``count`` threads at once; their results, in order."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = apply(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    return results


def _stored_progress(task_id: str) -> tuple[str, float, float | None, str]:
    record = tasktrail.get(task_id)
    assert record.progress is not None, record
    return record.state, record.progress.current, record.progress.total, record.progress.message


@pytest.mark.parametrize("via", ["progress", "reporter"])
def test_fifty_tasks_reporting_at_once_each_end_with_their_own_last_value(via: str) -> None:
    key = uuid.uuid4().hex
    _barriers[key] = threading.Barrier(TASKS)
    results = _apply_at_once(TASKS, lambda i: report_together.apply(args=(i, via, key)))
    for result in results:
        result.get()
    store.sync()
    stored = [_stored_progress(r.id) for r in results]
    assert stored == [("SUCCESS", CALLS, CALLS, f"task {i}") for i in range(TASKS)]


def test_threads_of_fifty_tasks_report_through_their_reporter() -> None:
    key = uuid.uuid4().hex
    _barriers[key] = threading.Barrier(TASKS)
    results = _apply_at_once(TASKS, lambda i: report_from_a_thread.apply(args=(i, key)))
    refusals = {r.get() for r in results}
    assert len(refusals) == 1 and "several tasks run in this process" in refusals.pop()
    store.sync()
    stored = [_stored_progress(r.id) for r in results]
    assert stored == [("SUCCESS", CALLS, CALLS, f"task {i}") for i in range(TASKS)]


def test_progress_is_written_while_tasks_run_and_after_a_quiet_spell() -> None:
    keys = [uuid.uuid4().hex for _ in range(10)]
    for key in keys:
        _events.update({f"{key}-1": threading.Event(), f"{key}-2": threading.Event()})
    ids = [str(uuid.uuid4()) for _ in keys]
    waiting = set(range(len(keys))) | {i + len(keys) for i in range(len(keys))}

    def watch() -> None:
        deadline = time.monotonic() + _WAIT
        while waiting and time.monotonic() < deadline:
            store.sync()
            for i, task_id in enumerate(ids):
                try:
                    progress = tasktrail.get(task_id).progress
                except tasktrail.TaskNotFound:
                    continue
                step = 0 if progress is None else int(progress.current)
                for seen in range(1, step + 1):
                    if i + (seen - 1) * len(keys) in waiting:
                        waiting.discard(i + (seen - 1) * len(keys))
                        _events[f"{keys[i]}-{seen}"].set()
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = _apply_at_once(
            len(keys), lambda i: report_then_wait.apply(args=(keys[i],), task_id=ids[i])
        )
        for result in results:
            result.get()
    finally:
        for event in _events.values():
            event.set()
        watcher.join()
    assert not waiting
    store.sync()
    assert [_stored_progress(i) for i in ids] == [("SUCCESS", 2, 2, "step 2")] * len(ids)


def test_a_reporter_outlives_its_run_but_cannot_report() -> None:
    key, task_id = uuid.uuid4().hex, str(uuid.uuid4())
    keep_reporter.apply(args=(key, 1), task_id=task_id).get()
    late = _kept[key]
    with pytest.raises(RuntimeError, match=f"task {task_id} is not running in this process"):
        late(2, 99, "after the run")
    # Nor into a later run of the same id in this process: the second run finds the
    # first run's reporter refused (the task fails if it is not).
    keep_reporter.apply(args=(key, 3), task_id=task_id).get()
    store.sync()
    assert _stored_progress(task_id) == ("SUCCESS", 1, 99, "run 1")


@shared_task(bind=True, store_eager_result=True)
def report_by_id(self: Any) -> None:
    tasktrail.Reporter(self.request.id)(5, 10, "by id")


def test_a_reporter_built_from_a_task_id_reports_for_it() -> None:
    # The dataclass as documented (a task_id), built by hand: found by its id per call.
    result = report_by_id.apply()
    result.get()
    store.sync()
    assert _stored_progress(result.id) == ("SUCCESS", 5, 10, "by id")
    with pytest.raises(RuntimeError, match=f"task {result.id} is not running in this process"):
        tasktrail.Reporter(result.id)(6, 10)


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["huge", "-huge"])
def test_an_int_too_large_for_a_float_is_a_payload_error(value: int) -> None:
    result = tasks.reports.apply(args=(1,), kwargs={"current": value})
    with pytest.raises(tasktrail.PayloadError, match="finite number"):
        result.get()
