"""Celery's view through a real worker: AsyncResult speaks Celery's states while
tasktrail.get keeps tasktrail's (tasktrail.states.celery_state). A lost task's view
(FAILURE raising the WorkerLostError) is checked in test_lost.py."""

from __future__ import annotations

import subprocess

import pytest
from celery.result import AsyncResult

import tasktrail
from tests.integration.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_task_held_for_its_countdown_is_pending_to_celery_and_received_to_tasktrail(
    worker: subprocess.Popen[bytes],
) -> None:
    result = tasks.add.apply_async((1, 1), countdown=3)
    wait_for(result.id, lambda r: r.state == "RECEIVED")
    assert result.status == "PENDING" and not result.ready()
    assert app.backend.get_task_meta(result.id)["status"] == "PENDING"
    assert result.get(timeout=20) == 2
    assert result.status == "SUCCESS" and tasktrail.get(result.id).state == "SUCCESS"


@pytest.mark.parametrize(
    "send",
    [
        # send_task() does not say ignore_result: the worker knows the task ignores it.
        lambda: app.send_task(tasks.add_ignoring_result.name, args=(1, 2)),
        lambda: tasks.add.apply_async((1, 2), ignore_result=True),
    ],
    ids=["declared-on-the-task", "given-at-the-call"],
)
def test_an_ignored_result_is_pending_to_celery_and_recorded_by_tasktrail(
    worker: subprocess.Popen[bytes], send: object
) -> None:
    result = send()  # type: ignore[operator]
    record = wait_for(result.id, lambda r: r.state == "SUCCESS")
    assert record.finished_at is not None and record.result is None
    meta = app.backend.get_task_meta(result.id)
    assert (meta["status"], meta["result"]) == ("PENDING", None)
    assert AsyncResult(result.id, app=app).status == "PENDING"
