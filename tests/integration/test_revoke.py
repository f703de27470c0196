"""Revoking through tasktrail's service: REVOKED at once when that is the truth.

Whether the task ran is checked apart from the store: the task leaves a file behind
only if it ran to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from celery.result import AsyncResult

import tasktrail
from tasktrail import services
from tests.testapp import tasks

from .conftest import WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]


def test_a_waiting_task_is_revoked_at_once_even_with_no_worker_online(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    queue = unique_queue("offline")
    proof = tmp_path / "ran"
    result = tasks.touch_after.apply_async((str(proof),), queue=queue)
    revoked = services.revoke(result.id)
    assert (revoked.state, revoked.message) == ("REVOKED", "revoked")
    record = tasktrail.get(result.id)
    assert (record.state, record.phase) == ("REVOKED", "done")
    assert record.error and record.error.type == "celery.exceptions.TaskRevokedError"
    assert AsyncResult(result.id).state == "REVOKED"
    # A worker that starts later must drop the message, not run it.
    start_worker("late", queue)
    after = tasks.add.apply_async((1, 1), queue=queue)
    assert after.get(timeout=20) == 2
    assert not proof.exists()
    assert "STARTED" not in [t.state for t in tasktrail.history(result.id)]


def test_a_running_task_revoked_with_terminate_is_revoked_at_once_and_stopped(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    queue = unique_queue("terminate")
    start_worker("terminate", queue)
    proof = tmp_path / "ran"
    result = tasks.touch_after.apply_async((str(proof), 3), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    revoked = services.revoke(result.id, terminate=True, signal="SIGKILL")
    assert (revoked.state, revoked.message) == ("REVOKED", "revoked and terminated with SIGKILL")
    assert tasktrail.get(result.id).state == "REVOKED"
    after = tasks.sleepy.apply_async((3.5,), queue=queue)
    assert after.get(timeout=20) == "woke"
    assert not proof.exists()


def test_a_running_task_revoked_without_terminate_runs_to_its_end(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    queue = unique_queue("no-terminate")
    start_worker("no-terminate", queue)
    proof = tmp_path / "ran"
    result = tasks.touch_after.apply_async((str(proof), 1), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    revoked = services.revoke(result.id)
    assert revoked.state == "STARTED" and "runs to its end" in revoked.message
    assert result.get(timeout=20) == str(proof)
    assert proof.exists() and tasktrail.get(result.id).state == "SUCCESS"
    assert services.revoke(result.id).message == "already SUCCESS: nothing to revoke"


def test_revoking_an_unknown_id_says_so() -> None:
    with pytest.raises(tasktrail.TaskNotFound):
        services.revoke("never-sent")
