"""tasktrail installed beside Celery's Redis result backend, with real workers.

The workers here run with ``CELERY_RESULT_BACKEND = "redis://..."`` (``TT_RESULT_BACKEND``
in tests/settings.py), and this process sends and reads through a Celery app on the same
Redis backend: ``AsyncResult`` reads Redis, ``tasktrail.get()`` reads the store, and
every state reaches the store through the signals (``update_state``'s custom states
through the backend's ``store_result``: tasktrail.celery.beside).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import WorkerLostError
from celery.result import AsyncResult
from django.conf import settings

import tasktrail
from tests import brokers

from .conftest import FAULT_ENV, FAULT_LOST_AFTER, WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]
TASKS = "tests.testapp.tasks"
# As in test_lost.py: LOST_AFTER + 3 heartbeat intervals, a second for the write.
SETTLED_WITHIN = FAULT_LOST_AFTER + 3 * float(FAULT_ENV["TT_HEARTBEAT_INTERVAL"]) + 1


@dataclass(frozen=True, slots=True)
class Beside:
    """A worker on Celery's Redis backend, and the app that sends to it and reads Redis."""

    app: Celery
    queue: str
    redis_url: str
    worker: WorkerProcess
    start_worker: StartWorker

    def send(self, task: str, *args: Any) -> AsyncResult:
        return self.app.send_task(f"{TASKS}.{task}", args, queue=self.queue)

    def in_redis(self, task_id: str) -> dict[str, Any]:
        """What Celery's Redis backend holds for the task, read from Redis itself."""
        raw = redis.Redis.from_url(self.redis_url).get(f"celery-task-meta-{task_id}")
        assert raw is not None, f"Redis holds nothing for {task_id}"
        found: dict[str, Any] = json.loads(raw)
        return found


@pytest.fixture
def beside(start_worker: StartWorker) -> Iterator[Beside]:
    url = brokers.spare_redis()
    app = Celery("beside", broker=settings.CELERY_BROKER_URL, backend=url, set_as_current=False)
    queue = unique_queue("beside")
    worker = start_worker("beside", queue, env={"TT_RESULT_BACKEND": url}, concurrency=2)
    try:
        yield Beside(app, queue, url, worker, start_worker)
    finally:
        app.close()


def _states(task_id: str) -> list[str]:
    return [t.state for t in tasktrail.history(task_id)]


def test_a_success_is_in_redis_and_in_the_store(beside: Beside) -> None:
    result = beside.send("add", 2, 3)
    assert result.get(timeout=20) == 5
    assert beside.in_redis(result.id)["status"] == "SUCCESS"
    record = wait_for(result.id, lambda r: r.ready)
    assert (record.state, record.result, record.args) == ("SUCCESS", 5, [2, 3])
    assert record.worker == beside.worker.hostname
    assert _states(result.id) == ["PENDING", "STARTED", "SUCCESS"]


def test_a_failure_keeps_its_error_in_the_store(beside: Beside) -> None:
    result = beside.send("boom", "no disk")
    with pytest.raises(ValueError, match="no disk"):
        result.get(timeout=20)
    assert beside.in_redis(result.id)["status"] == "FAILURE"
    record = wait_for(result.id, lambda r: r.ready)
    assert record.state == "FAILURE"
    assert record.error is not None
    assert (record.error.type, record.error.message) == ("ValueError", "no disk")
    assert "raise ValueError(message)" in record.error.traceback


def test_retries_are_attempts_in_the_store(beside: Beside) -> None:
    # A second between attempts, as in test_worker.py: a RETRY written after the next
    # attempt started is an older attempt's, which the store's guard refuses.
    result = beside.send("flaky", 2, 1.0)
    assert result.get(timeout=30) == "ok after 3 attempts"
    record = wait_for(result.id, lambda r: r.ready)
    assert (record.state, record.attempt) == ("SUCCESS", 3)
    steps = [(t.state, t.attempt) for t in tasktrail.history(result.id)]
    assert ("RETRY", 1) in steps and ("RETRY", 2) in steps and steps[-1] == ("SUCCESS", 3)
    errors = [a.error and a.error.message for a in tasktrail.attempts(result.id)]
    assert errors == ["attempt 1 failed", "attempt 2 failed", None]


def test_update_state_is_read_in_both_while_the_task_runs(beside: Beside) -> None:
    result = beside.send("holds_progress", 3)
    record = wait_for(result.id, lambda r: r.state == "PROGRESS")
    assert record.progress is not None
    assert (record.progress.current, record.progress.total) == (1, 2)
    assert record.progress.message == "half"
    # Celery's view comes from Redis, untouched.
    assert result.state == "PROGRESS"
    assert result.info == {"current": 1, "total": 2, "description": "half"}
    assert result.get(timeout=20) == "done"
    # Redis has the outcome first: the store's write follows within its flush.
    wait_for(result.id, lambda r: r.ready)
    assert _states(result.id) == ["PENDING", "STARTED", "PROGRESS", "SUCCESS"]


def test_progress_from_tasktrail_progress(beside: Beside) -> None:
    result = beside.send("reports_progress", 5, 0.05)
    assert result.get(timeout=20) == 5
    record = wait_for(result.id, lambda r: r.ready)
    assert record.progress is not None
    assert (record.progress.current, record.progress.percent) == (5, 100)
    assert record.progress.message == "step 5 of 5"
    assert "PROGRESS" in _states(result.id)


def test_celery_progress_style_steps_reach_the_store(beside: Beside) -> None:
    result = beside.send("celery_progress_style", 4)
    assert result.get(timeout=20) == "done"
    record = wait_for(result.id, lambda r: r.ready)
    assert record.progress is not None
    assert (record.progress.current, record.progress.total) == (4, 4)


def test_a_held_task_reads_received_and_a_revoked_one_revoked(beside: Beside) -> None:
    # A countdown holds the task in the worker: RECEIVED in the store, PENDING in Redis.
    result = beside.app.send_task(f"{TASKS}.sleepy", (30,), queue=beside.queue, countdown=2)
    wait_for(result.id, lambda r: r.state == "RECEIVED", timeout=10)
    assert result.state == "PENDING"
    wait_for(result.id, lambda r: r.state == "STARTED", timeout=20)
    beside.app.control.revoke(result.id, terminate=True, signal="SIGKILL")
    record = wait_for(result.id, lambda r: r.ready)
    assert record.state == "REVOKED"
    assert record.error is not None and record.error.type.endswith("TaskRevokedError")
    deadline = time.monotonic() + 10
    while result.state != "REVOKED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert beside.in_redis(result.id)["status"] == "REVOKED"


def test_a_task_on_a_killed_worker_is_lost_in_the_store_only(beside: Beside) -> None:
    url = beside.redis_url
    beside.start_worker("watcher", unique_queue("watcher"), env={"TT_RESULT_BACKEND": url})
    queue = unique_queue("victim")
    victim = beside.start_worker("victim", queue, env={"TT_RESULT_BACKEND": url})
    result = beside.app.send_task(f"{TASKS}.sleepy", (60,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    record = wait_for(result.id, lambda r: r.state == "LOST", timeout=SETTLED_WITHIN + 10)
    assert record.error is not None
    assert record.error.type == "billiard.exceptions.WorkerLostError"
    assert "stopped heartbeating" in record.error.message
    assert tasktrail.get(result.id).ready
    # Redis is Celery's alone: no backend but tasktrail's learns of a lost worker, so
    # Celery's view stays where the dead worker left it (no task_track_started: PENDING).
    assert result.state == "PENDING"
    assert WorkerLostError.__name__ in record.error.type
