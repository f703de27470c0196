"""django.tasks' contract on a real Celery worker: Django's own tests/tasks/ assertions
(the whole TaskResult round-trips, missing ids, exceptions incl. SystemExit, async tasks,
context, signals), and tasktrail's record of the same tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.tasks import TaskResult, TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued
from django.utils import timezone

import tasktrail
from tasktrail.tasks import CeleryBackend
from tests.integration.conftest import unique_queue, wait_for
from tests.testapp import tasks as celery_tasks

from . import djtasks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(result: TaskResult, timeout: float = 20) -> TaskResult:
    wait_for(result.id, lambda r: r.ready, timeout)
    result.refresh()
    return result


def test_the_whole_result_round_trips_through_the_store() -> None:
    # A queue no worker reads: the task stays READY while it is compared.
    after = timezone.now() + timedelta(hours=1)
    task = djtasks.add.using(priority=70, queue_name=unique_queue("idle"), run_after=after)
    result = task.enqueue(2, y=3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None,) * 3
    assert (result.args, result.kwargs, result.errors, result.worker_ids) == ([2], {"y": 3}, [], [])
    assert default_task_backend.get_result(result.id) == result
    got = task.get_result(result.id)
    assert (got.task.priority, got.task.queue_name, got.task.run_after) == (
        70,
        task.queue_name,
        after,
    )
    with pytest.raises(ValueError, match="not finished"):
        _ = got.return_value
    record = tasktrail.get(result.id)
    assert (record.name, record.state, record.queue, record.max_retries) == (
        "tests.tasks.djtasks.add",
        "PENDING",
        task.queue_name,
        0,  # the backend's policy retries no exception
    )
    flaky = djtasks.flaky.using(queue_name=task.queue_name).enqueue("unused", 0)
    assert tasktrail.get(flaky.id).max_retries == 2  # recorded when sent


def test_a_delay_as_timedelta_round_trips() -> None:
    task = djtasks.add.using(queue_name=unique_queue("idle"), run_after=timedelta(minutes=5))
    result = task.enqueue(1, 1)
    assert default_task_backend.get_result(result.id).task.run_after == timedelta(minutes=5)


def test_an_id_never_sent_does_not_exist() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(uuid.uuid4()))
    with pytest.raises(TaskResultDoesNotExist):
        djtasks.add.get_result("not an id \x00")


def test_a_plain_celery_tasks_id_does_not_exist_as_a_django_task(worker: Any) -> None:
    sent = celery_tasks.add.delay(1, 2)
    assert sent.get(timeout=20) == 3
    with pytest.raises(TaskResultDoesNotExist, match=r"not a django\.tasks task"):
        default_task_backend.get_result(sent.id)
    assert tasktrail.get(sent.id).state == "SUCCESS"  # tasktrail still reads it


def test_another_tasks_result_mismatches(worker: Any) -> None:
    result = finished(djtasks.add.enqueue(1, 2))
    with pytest.raises(TaskResultMismatch):
        djtasks.fail.get_result(result.id)


def test_success_from_ready_to_successful(worker: Any) -> None:
    result = djtasks.add.enqueue(20, 22)
    assert result.status == TaskResultStatus.READY
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.enqueued_at <= result.started_at <= result.finished_at  # type: ignore[operator]
    assert result.last_attempted_at == result.started_at
    assert result.errors == [] and result.attempts == 1
    record = tasktrail.get(result.id)
    assert result.worker_ids == [record.worker] and record.worker.startswith("itest@")
    assert record.name == "tests.tasks.djtasks.add" and record.result == 42


def test_an_async_task_runs_on_the_worker(worker: Any) -> None:
    assert finished(djtasks.async_add.enqueue(2, 5)).return_value == 7


def test_an_exception_is_an_error_with_an_importable_class_and_its_traceback(
    worker: Any,
) -> None:
    result = finished(djtasks.fail.enqueue("no such row"))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: no such row" in error.traceback and "djtasks.py" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value


def test_system_exit_fails_the_task_and_spares_the_pool_process(worker: Any) -> None:
    result = finished(djtasks.exit_now.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.SystemExit"]
    assert "SystemExit: 3" in result.errors[0].traceback
    record = tasktrail.get(result.id)
    # Failed in the task, not lost with its process: the same process runs the next.
    assert record.state == "FAILURE"
    after = finished(djtasks.add.enqueue(1, 1))
    assert after.status == TaskResultStatus.SUCCESSFUL


def test_a_value_json_cannot_hold_fails_the_task_and_says_so(worker: Any) -> None:
    result = finished(djtasks.not_json.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"
    assert [s["status"] for s in djtasks.signals_seen(result.id)] == ["RUNNING", "FAILED"]


def test_context_gives_the_result_and_attempt(worker: Any) -> None:
    result = finished(djtasks.attempt_of.enqueue())
    assert result.return_value == {"attempt": 1, "id": result.id}


def test_signals_as_django_sends_them(worker: Any) -> None:
    enqueued: list[TaskResult] = []

    def receiver(sender: type, task_result: TaskResult, **_: Any) -> None:
        enqueued.append(task_result)

    task_enqueued.connect(receiver)
    try:
        ok = finished(djtasks.add.enqueue(1, 2))
        failed = finished(djtasks.fail.enqueue("x"))
    finally:
        task_enqueued.disconnect(receiver)
    assert [r.id for r in enqueued] == [ok.id, failed.id]
    sender = f"{CeleryBackend.__module__}.{CeleryBackend.__qualname__}"
    seen = [
        (s["signal"], s["status"], s["handling"], s["sender"]) for s in djtasks.signals_seen(ok.id)
    ]
    assert seen == [("started", "RUNNING", None, sender), ("finished", "SUCCESSFUL", None, sender)]
    seen = [(s["signal"], s["status"], s["handling"]) for s in djtasks.signals_seen(failed.id)]
    # task_finished from inside the except block: the exception is being handled.
    assert seen == [("started", "RUNNING", None), ("finished", "FAILED", "ValueError")]


def test_retries_are_attempts_with_their_errors(worker: Any, tmp_path: Path) -> None:
    result = finished(djtasks.flaky.enqueue(str(tmp_path / "runs"), 2))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert result.attempts == 3 and len(set(map(str, result.worker_ids))) == 1
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2
    assert result.last_attempted_at > result.started_at  # type: ignore[operator]
    record = tasktrail.get(result.id)
    assert (record.attempt, record.max_retries) == (3, 2)
    assert [a.state for a in tasktrail.attempts(result.id)] == ["RETRY", "RETRY", "SUCCESS"]


def test_retries_run_out_and_the_task_fails(worker: Any, tmp_path: Path) -> None:
    result = finished(djtasks.flaky.enqueue(str(tmp_path / "runs"), 9))
    assert result.status == TaskResultStatus.FAILED and result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 3
    assert "run 3 failed" in result.errors[-1].traceback


def test_progress_inside_a_django_task(worker: Any) -> None:
    result = djtasks.report.enqueue(4)
    record = wait_for(result.id, lambda r: r.progress is not None and r.progress.current >= 2)
    assert record.progress is not None and record.progress.total == 4
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    finished(result)
    assert tasktrail.get(result.id).progress.current == 4  # type: ignore[union-attr]


def test_the_json_endpoint_reads_a_django_task(worker: Any) -> None:
    from tests.conftest import client_for, make_user

    staff = make_user("djstaff", is_staff=True, is_superuser=True)
    result = finished(djtasks.add.enqueue(3, 4))
    answer = client_for(staff).get(f"/tasktrail/tasks/{result.id}/status/").json()
    assert answer["state"] == "SUCCESS" and answer["result"] == 7
    assert answer["name"] == "tests.tasks.djtasks.add"


def test_a_killed_workers_task_reads_failed_lost(
    start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    from tests.integration.test_lost import SETTLED_WITHIN

    start_worker("watcher", unique_queue("watcher"))
    queue = unique_queue("victim")
    victim = start_worker("victim", queue)
    result = djtasks.hold.using(queue_name=queue).enqueue(str(tmp_path / "never"), 60)
    wait_for(result.id, lambda r: r.state == "STARTED")
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    victim.kill()
    wait_for(result.id, lambda r: r.state == "LOST", timeout=SETTLED_WITHIN)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    # Celery's own class for a lost process, importable as django.tasks asks.
    assert error.exception_class_path == "billiard.exceptions.WorkerLostError"
    assert issubclass(error.exception_class, Exception)


def test_run_after_holds_the_task_ready_until_then(worker: Any) -> None:
    result = djtasks.add.using(run_after=timedelta(seconds=2)).enqueue(5, 5)
    # The worker holds it for its ETA: RECEIVED, which django.tasks reads as READY.
    wait_for(result.id, lambda r: r.state == "RECEIVED")
    result.refresh()
    assert result.status == TaskResultStatus.READY
    finished(result)
    assert result.return_value == 10
    assert [t.state for t in tasktrail.history(result.id)][:3] == ["PENDING", "RECEIVED", "STARTED"]
