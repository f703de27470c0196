"""Lost workers, with real processes: a worker is SIGKILLed (main process and pool
together) while its task runs, and another worker, which keeps heartbeating, settles
the task: ``LOST``, or a new attempt for tasks that opted in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from celery.exceptions import WorkerLostError
from celery.result import AsyncResult

import tasktrail
from tasktrail.models import Worker
from tests.testapp import tasks
from tests.testapp.celeryapp import app

from .conftest import FAULT_LOST_AFTER, WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]
# The check runs every heartbeat (0.5 s here, 1 s for the session's worker), and the
# verdict is written through the 20 ms buffer.
SETTLED_WITHIN = FAULT_LOST_AFTER + 3


def kill_while_running(start_worker: StartWorker, task: Any, *args: object) -> tuple[str, str]:
    """Start a watcher and a victim, run ``task`` on the victim, SIGKILL the victim.

    Returns the task id and the victim's hostname once the kill is done.
    """
    start_worker("watcher", unique_queue("watcher"))
    queue = unique_queue("victim")
    victim = start_worker("victim", queue)
    result = task.apply_async(args, queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    return result.id, victim.hostname


def test_a_task_on_a_killed_worker_becomes_lost_with_the_reason(
    start_worker: StartWorker,
) -> None:
    task_id, victim = kill_while_running(start_worker, tasks.sleepy, 60)
    killed = time.monotonic()
    record = wait_for(task_id, lambda r: r.state == "LOST", timeout=SETTLED_WITHIN + 10)
    assert time.monotonic() - killed < SETTLED_WITHIN
    assert record.phase == "done" and record.finished_at and record.expires_at
    assert record.error is not None
    assert record.error.type == "billiard.exceptions.WorkerLostError"
    assert f"worker {victim} (pid " in record.error.message
    assert "stopped heartbeating at" in record.error.message
    # Celery's view: a failure that raises the error, as for a lost pool process.
    result = AsyncResult(task_id)
    assert result.state == "FAILURE" and result.ready() and result.failed()
    with pytest.raises(WorkerLostError, match="stopped heartbeating"):
        result.get(timeout=1)
    [attempt] = tasktrail.attempts(task_id)
    assert (attempt.number, attempt.state, attempt.worker) == (1, "LOST", victim)
    assert attempt.started_at and attempt.finished_at and attempt.worker_pid


def test_acks_late_task_is_delivered_again_and_succeeds_as_attempt_two(
    start_worker: StartWorker,
) -> None:
    short = {"TT_VISIBILITY_TIMEOUT": "5"}
    watcher = start_worker("watcher", unique_queue("watcher"), short)
    queue = unique_queue("victim")
    victim = start_worker("victim", queue, short)
    result = tasks.sleepy_acks_late.apply_async((2,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    # The broker hands the unacknowledged message out again: Redis after the visibility
    # timeout, RabbitMQ when the dead consumer's connection closes.
    app.control.add_consumer(queue, destination=[watcher.hostname], reply=True)
    assert result.get(timeout=30) == "woke"
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.worker) == ("SUCCESS", 2, watcher.hostname)
    first, second = tasktrail.attempts(result.id)
    assert (first.number, first.worker) == (1, victim.hostname)
    assert (second.number, second.state, second.worker) == (2, "SUCCESS", watcher.hostname)
    # RETRY if the lost-worker check settled it before the broker delivered it again;
    # else the run reported nothing, and the next attempt's start ended it as lost.
    assert first.state in {"RETRY", "LOST"}
    if first.state == "RETRY":
        assert first.error and "the broker will deliver the task again" in first.error.message
    else:
        assert first.error and "reported no outcome" in first.error.message


def test_retry_on_worker_lost_task_is_sent_again_and_succeeds_as_attempt_two(
    start_worker: StartWorker,
) -> None:
    task_id, victim = kill_while_running(start_worker, tasks.sleepy_retry_on_lost, 1)
    waiting = wait_for(task_id, lambda r: r.state == "RETRY", timeout=SETTLED_WITHIN + 10)
    assert waiting.phase == "waiting" and waiting.next_retry_at is not None
    assert waiting.error and "sent again as attempt 2 (retry_on_worker_lost)" in (
        waiting.error.message
    )
    queue = tasktrail.get(task_id).queue
    replacement = start_worker("replacement", queue)
    record = wait_for(task_id, lambda r: r.state == "SUCCESS", timeout=30)
    assert (record.attempt, record.worker, record.result) == (2, replacement.hostname, "woke")
    first, second = tasktrail.attempts(task_id)
    assert (first.state, first.worker) == ("RETRY", victim)
    assert first.error and first.error.type == "billiard.exceptions.WorkerLostError"
    assert (second.state, second.worker) == ("SUCCESS", replacement.hostname)


def test_a_worker_restarted_under_the_same_name_settles_its_previous_tasks(
    start_worker: StartWorker,
) -> None:
    # No other worker runs, and LOST_AFTER is long: only the restart can tell.
    queue = unique_queue("restart")
    patient = {"TT_LOST_AFTER": "600"}
    victim = start_worker("restart", queue, patient)
    result = tasks.sleepy.apply_async((60,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    start_worker("restart", queue, patient, hostname=victim.hostname)
    record = wait_for(result.id, lambda r: r.state == "LOST", timeout=5)
    assert record.error and f"worker {victim.hostname} (pid " in record.error.message
    assert "restarted at" in record.error.message


def test_workers_record_heartbeats_with_the_tasks_in_hand(start_worker: StartWorker) -> None:
    queue = unique_queue("beating")
    worker = start_worker("beating", queue)
    result = tasks.sleepy.apply_async((3,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    time.sleep(1)
    row = Worker.objects.get(hostname=worker.hostname)
    assert row.pid == worker.proc.pid and row.stopped_at is None
    assert row.active == 1 and row.started_at < row.last_seen < row.silent_after
    assert result.get(timeout=20) == "woke"
    worker.stop()
    row = Worker.objects.get(hostname=worker.hostname)
    assert row.stopped_at is not None and row.silent_after == row.stopped_at
