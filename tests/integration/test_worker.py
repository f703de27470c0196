"""tasktrail with a real worker process, real Redis and the real database.

Every state tasktrail records (docs/reference/states.md) is observed here, through
tasktrail's API and through Celery's own ``AsyncResult``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import celery
import pytest
from celery import group, signals
from celery.result import AsyncResult, GroupResult
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

import tasktrail
from tests.testapp import tasks
from tests.testapp.celeryapp import app

from .conftest import WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _worker(worker: Any) -> None:
    """Every test here needs the worker process."""


def revoked_within(countdown: float) -> float:
    """How long a task held for its countdown may take to read REVOKED after a revoke.
    Celery 5.6 and later mark it revoked in the backend as the worker gets the revoke;
    Celery 5.5's worker only flags it in memory and reports it (``task_revoked``) when
    the countdown ends, whatever the backend (docs/reference/states.md)."""
    return 20 if celery.VERSION[:2] >= (5, 6) else countdown + 20


def test_success_through_celery_and_tasktrail() -> None:
    result = tasks.add.delay(2, 3)
    assert result.get(timeout=20) == 5
    assert (result.status, result.state, result.result, result.info) == ("SUCCESS",) * 2 + (5, 5)
    assert result.ready() and result.successful()
    record = tasktrail.get(result.id)
    assert (record.state, record.phase, record.result, record.args) == (
        "SUCCESS",
        "done",
        5,
        [2, 3],
    )
    assert record.name == "tests.testapp.tasks.add"
    assert record.queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert record.worker.startswith("itest@") and record.worker_pid
    assert record.sent_at and record.started_at and record.finished_at
    assert record.sent_at <= record.started_at <= record.finished_at
    assert record.expires_at and record.expires_at > record.finished_at
    assert tasktrail.history(result.id)[0].state == "PENDING"
    assert "SUCCESS" in [t.state for t in tasktrail.history(result.id)]


def test_pending_means_sent_and_waiting() -> None:
    # No worker consumes this queue: the task is genuinely waiting.
    result = tasks.add.apply_async((1, 1), queue="nobody-listens")
    record = tasktrail.get(result.id)
    assert (record.state, record.phase, record.queue) == ("PENDING", "waiting", "nobody-listens")
    assert AsyncResult(result.id).state == "PENDING"


def test_received_while_held_for_its_eta() -> None:
    result = tasks.add.apply_async((1, 1), countdown=30)
    record = wait_for(result.id, lambda r: r.state == "RECEIVED")
    assert record.received_at and record.worker.startswith("itest@")
    result.revoke()
    wait_for(result.id, lambda r: r.state == "REVOKED", timeout=revoked_within(30))


def test_started_is_recorded_without_task_track_started() -> None:
    assert not app.conf.task_track_started
    result = tasks.sleepy.delay(1.5)
    record = wait_for(result.id, lambda r: r.state == "STARTED")
    assert record.phase == "running" and record.started_at
    assert result.get(timeout=20) == "woke"


def test_progress_is_visible_while_running_and_final_before_success() -> None:
    result = tasks.reports_progress.delay(20, 0.1)
    seen = wait_for(result.id, lambda r: r.state == "PROGRESS" and r.progress is not None)
    assert seen.progress is not None and 0 < (seen.progress.percent or 0) < 100
    assert result.get(timeout=20) == 20
    record = tasktrail.get(result.id)
    assert record.progress is not None
    assert (record.progress.current, record.progress.total, record.progress.message) == (
        20.0,
        20.0,
        "step 20 of 20",
    )


def test_celery_progress_convention_is_understood() -> None:
    result = tasks.celery_progress_style.delay(10)
    seen = wait_for(result.id, lambda r: r.state == "PROGRESS")
    assert seen.progress is not None and seen.progress.total == 10
    assert AsyncResult(result.id).state in {"PROGRESS", "SUCCESS"}
    assert result.get(timeout=20) == "done"


def test_retries_are_visible_with_their_attempts() -> None:
    result = tasks.flaky.delay(2, countdown=1.0)
    waiting = wait_for(result.id, lambda r: r.state == "RETRY")
    assert waiting.phase == "waiting" and waiting.next_retry_at is not None
    assert waiting.error is not None and waiting.error.type == "ConnectionError"
    assert waiting.retries_left == 2
    assert result.get(timeout=30) == "ok after 3 attempts"
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.max_retries, record.error) == (
        "SUCCESS",
        3,
        3,
        None,
    )
    steps = [(t.state, t.attempt) for t in tasktrail.history(result.id)]
    assert ("RETRY", 1) in steps and ("RETRY", 2) in steps and steps[-1] == ("SUCCESS", 3)
    errors = [t.detail["error_message"] for t in tasktrail.history(result.id) if t.state == "RETRY"]
    assert errors == ["attempt 1 failed", "attempt 2 failed"]
    # Celery sends a retry from inside the task: it is neither its own parent nor child.
    assert (record.parent_id, record.children) == ("", ())


def test_retries_exhausted_end_in_failure_with_every_attempt() -> None:
    result = tasks.flaky.delay(10, countdown=0.1)
    with pytest.raises(ConnectionError, match="attempt 4 failed"):
        result.get(timeout=30)
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.retries_left) == ("FAILURE", 4, 0)
    assert [t.attempt for t in tasktrail.history(result.id) if t.state == "RETRY"] == [1, 2, 3]


def test_failure_keeps_type_message_and_traceback() -> None:
    result = tasks.boom.delay("<script>alert(1)</script>")
    with pytest.raises(ValueError, match="alert"):
        result.get(timeout=20)
    assert result.status == "FAILURE"
    assert "raise ValueError(message)" in result.traceback
    record = tasktrail.get(result.id)
    assert record.error is not None
    assert (record.error.type, record.error.message) == ("ValueError", "<script>alert(1)</script>")
    assert record.error.traceback and "tasks.py" in record.error.traceback


def test_a_task_waiting_behind_busy_pool_processes_is_received() -> None:
    # Both pool processes busy: the next task waits in the worker's prefetch buffer,
    # and its RECEIVED is written once it has waited RECEIVED_AFTER. The waiting task is
    # sent only once both busy tasks are seen running at the same moment, so both
    # processes are taken when it arrives. (It once started at once in CI: a second
    # session worker on the queue had free processes; tests/integration/conftest.py.)
    busy = [tasks.sleepy.delay(5) for _ in range(2)]
    deadline = time.monotonic() + 20
    while {tasktrail.get(r.id).state for r in busy} != {"STARTED"}:
        assert time.monotonic() < deadline, [tasktrail.get(r.id) for r in busy]
        time.sleep(0.05)
    waiting = tasks.add.delay(2, 3)
    record = wait_for(waiting.id, lambda r: r.state == "RECEIVED", timeout=4)
    assert record.received_at is not None and record.started_at is None
    assert waiting.get(timeout=20) == 5
    done = tasktrail.get(waiting.id)
    assert done.received_at and done.started_at and done.received_at < done.started_at
    states = [t.state for t in tasktrail.history(waiting.id)]
    assert states == ["PENDING", "RECEIVED", "STARTED", "SUCCESS"]
    # Both processes free again before the next test.
    assert [r.get(timeout=20) for r in busy] == ["woke", "woke"]


def test_revoked_before_it_runs() -> None:
    result = tasks.add.apply_async((1, 2), countdown=60)
    wait_for(result.id, lambda r: r.state == "RECEIVED")
    result.revoke()
    record = wait_for(result.id, lambda r: r.state == "REVOKED", timeout=revoked_within(60))
    assert record.phase == "done"
    assert AsyncResult(result.id).state == "REVOKED"


def test_revoked_and_terminated_while_running() -> None:
    result = tasks.sleepy.delay(30)
    wait_for(result.id, lambda r: r.state == "STARTED")
    result.revoke(terminate=True)
    record = wait_for(result.id, lambda r: r.state == "REVOKED")
    assert record.finished_at is not None


def test_late_started_after_success_is_ignored() -> None:
    result = tasks.add.delay(1, 1)
    assert result.get(timeout=20) == 2
    # What a task_track_started write arriving late does to django-celery-results:
    app.backend.mark_as_started(result.id, pid=1, hostname="late")
    tasktrail.get(result.id)  # flushes this process's buffered write
    assert AsyncResult(result.id).state == "SUCCESS"
    assert tasktrail.get(result.id).worker != "late"


def test_unknown_id_is_pending_for_celery_but_not_found_for_tasktrail() -> None:
    assert AsyncResult("never-sent").state == "PENDING"
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get("never-sent")


def test_non_json_result_fails_clearly() -> None:
    result = tasks.returns_set.delay()
    with pytest.raises(Exception, match="not JSON-serialisable"):
        result.get(timeout=20)
    record = tasktrail.get(result.id)
    assert record.state == "FAILURE" and record.error is not None
    assert record.error.type == "kombu.exceptions.EncodeError"
    assert "tasktrail stores JSON only" in record.error.message


def test_oversized_result_fails_clearly() -> None:
    result = tasks.returns_huge.delay(2 * 1024 * 1024)
    with pytest.raises(Exception, match="MAX_RESULT_BYTES"):
        result.get(timeout=20)
    assert tasktrail.get(result.id).state == "FAILURE"


def test_forget_removes_the_result() -> None:
    result = tasks.add.delay(3, 3)
    result.get(timeout=20)
    result.forget()
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get(result.id)
    assert AsyncResult(result.id).state == "PENDING"


def test_group_save_and_restore() -> None:
    saved = group(tasks.add.s(i, i) for i in range(4)).apply_async()
    saved.save()
    restored = GroupResult.restore(saved.id, app=app)
    assert restored is not None
    assert restored.get(timeout=20) == [0, 2, 4, 6]
    assert {tasktrail.get(r.id).group_id for r in restored.results} == {saved.id}


def test_record_is_created_by_the_worker_when_the_publish_write_is_lost(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    uid = "tasktrail._published"
    # A queue no worker reads yet: on RabbitMQ a worker would start the task before the
    # check below (the broker pushes at once).
    queue = unique_queue("unpublished")
    assert signals.after_task_publish.disconnect(dispatch_uid=uid)
    try:
        result = tasks.add.apply_async((4, 4), queue=queue)
    finally:
        from tasktrail.celery.signals import connect

        connect()
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get(result.id)
    start_worker("unpublished", queue)
    assert result.get(timeout=20) == 8
    record = tasktrail.get(result.id)
    assert (record.state, record.name, record.args) == (
        "SUCCESS",
        "tests.testapp.tasks.add",
        [4, 4],
    )


def test_owner_is_the_user_who_enqueued_through_a_view() -> None:
    user = User.objects.create_user("ann", password="pw")
    client = Client()
    client.force_login(user)
    task_id = client.get("/start/").json()["task_id"]
    assert tasktrail.get(task_id).owner_id == user.pk
    record = wait_for(task_id, lambda r: r.state == "SUCCESS")
    assert record.owner_id == user.pk


def test_seed_status_view_answers_with_celery_status() -> None:
    result = tasks.add.delay(5, 5)
    result.get(timeout=20)
    body = json.loads(Client().get(f"/status/{result.id}/").content)
    assert body == {"task_id": result.id, "status": "SUCCESS"}


def test_many_tasks_all_end_in_success() -> None:
    results = [tasks.noop.delay() for _ in range(300)]
    deadline = time.monotonic() + 60
    for r in results:
        r.get(timeout=max(1.0, deadline - time.monotonic()))
    assert {tasktrail.get(r.id).state for r in results} == {"SUCCESS"}
