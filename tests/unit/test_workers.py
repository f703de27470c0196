"""Heartbeats, leases and the lost-task check on a real database (SQLite and PostgreSQL).

The processes around it (workers killed for real) are in tests/integration/test_lost.py;
here the check's decisions are driven from heartbeat rows written directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

import tasktrail
from tasktrail import store
from tasktrail.celery import attempts, reaper, recorder
from tasktrail.models import Worker
from tasktrail.store import workers
from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
SECOND = timedelta(seconds=1)


def beat(hostname: str, silent_in: float, started: datetime = NOW - 60 * SECOND) -> None:
    """A heartbeat written ``silent_in`` seconds before the worker counts as silent."""
    workers.beat(hostname, 100, started, NOW, NOW + silent_in * SECOND, 1, 0)


def running(
    task_id: str, worker: str, name: str = "tests.testapp.tasks.sleepy", **values: object
) -> None:
    values.setdefault("started_at", NOW - 30 * SECOND)
    store.record(store.event(task_id, "STARTED", 1, NOW, name=name, worker=worker, **values))
    store.flush()


def test_a_lease_has_one_holder_until_it_expires_or_is_released() -> None:
    assert workers.claim("chore", "a", NOW, NOW + 10 * SECOND)
    assert not workers.claim("chore", "b", NOW, NOW + 10 * SECOND)
    assert workers.claim("chore", "a", NOW, NOW + 10 * SECOND), "the holder renews"
    assert workers.claim("chore", "b", NOW + 11 * SECOND, NOW + 20 * SECOND), "expired"
    workers.release("chore", "b")
    assert workers.claim("chore", "c", NOW, NOW + 10 * SECOND)


def test_orphans_are_running_tasks_of_silent_stopped_or_restarted_workers() -> None:
    beat("silent@h", -1)
    beat("alive@h", 30)
    beat("reborn@h", 30, started=NOW - 5 * SECOND)
    beat("stopped@h", 30)
    workers.stop("stopped@h", 100, NOW - SECOND)
    running("t-silent", "silent@h")
    running("t-alive", "alive@h")
    running("t-reborn-old", "reborn@h")
    running("t-reborn-new", "reborn@h", started_at=NOW - SECOND)
    running("t-stopped", "stopped@h")
    running("t-unknown-worker", "nobody@h")
    store.record(store.event("t-done", "SUCCESS", 1, NOW, worker="silent@h"))
    store.flush()
    found = {o.task_id: o for o in workers.orphans(NOW)}
    assert set(found) == {"t-silent", "t-reborn-old", "t-stopped"}
    assert found["t-reborn-old"].restarted and not found["t-silent"].restarted
    assert "restarted at" in reaper.reason(found["t-reborn-old"])
    assert "stopped at" in reaper.reason(found["t-stopped"])
    assert "stopped heartbeating at" in reaper.reason(found["t-silent"])


def test_the_check_settles_orphans_by_what_each_task_opted_into() -> None:
    beat("gone@h", -1)
    running("lost", "gone@h")
    running("redelivered", "gone@h", name="tests.testapp.tasks.sleepy_acks_late")
    # Opted into re-sending, but its arguments were not stored whole: it cannot be sent.
    running(
        "capped",
        "gone@h",
        name="tests.testapp.tasks.sleepy_retry_on_lost",
        args=store_json({"tasktrail_omitted": "70000 bytes, over MAX_ARGS_BYTES (65536)"}),
        kwargs=store_json({}),
    )
    assert reaper.reap(app) == 3
    lost = tasktrail.get("lost")
    assert (lost.state, lost.attempt, lost.worker) == ("LOST", 1, "gone@h")
    assert lost.error and "worker gone@h (pid 100) stopped heartbeating" in lost.error.message
    assert lost.expires_at and lost.expires_at - lost.updated_at > timedelta(days=6)
    waiting = tasktrail.get("redelivered")
    assert (waiting.state, waiting.phase) == ("RETRY", "waiting")
    assert waiting.error and "the broker will deliver the task again" in waiting.error.message
    capped = tasktrail.get("capped")
    assert capped.state == "LOST" and capped.error
    assert "arguments were not stored in full" in capped.error.message
    assert reaper.reap(app) == 0, "settled tasks are not orphans any more"


def test_a_lost_task_is_replaced_by_its_real_outcome() -> None:
    beat("slow@h", -1)
    running("late", "slow@h")
    assert reaper.reap(app) == 1
    assert tasktrail.get("late").state == "LOST"
    store.record(store.event("late", "SUCCESS", 1, timezone.now(), result="1"))
    record = tasktrail.get("late")
    assert (record.state, record.result, record.error) == ("SUCCESS", 1, None)
    assert [t.state for t in tasktrail.history("late")][-2:] == ["LOST", "SUCCESS"]


def store_json(value: object) -> str:
    from tasktrail import jsoncodec

    return jsoncodec.dumps(value)


def start_redelivered(task_id: str, retries: int = 0) -> dict[str, object] | None:
    """What the worker records when a re-delivered message starts."""
    tasks.sleepy.push_request(
        id=task_id, retries=retries, delivery_info={"redelivered": True}, hostname="w2"
    )
    try:
        recorder.started(tasks.sleepy, task_id)
        headers = tasks.sleepy.request.headers
    finally:
        tasks.sleepy.pop_request()
    store.flush()
    return headers


def test_a_redelivered_message_that_ran_before_starts_the_next_attempt() -> None:
    running("again", "w1@h")
    headers = start_redelivered("again")
    record = tasktrail.get("again")
    assert (record.state, record.attempt, record.worker) == ("STARTED", 2, "w2")
    assert headers == {attempts.RERUNS: 1}, "retries of this run carry the count along"


def test_a_redelivered_message_that_never_started_keeps_its_attempt() -> None:
    store.record(store.event("prefetched", "RECEIVED", 1, NOW, worker="w1@h"))
    store.flush()
    start_redelivered("prefetched")
    assert tasktrail.get("prefetched").attempt == 1


def test_heartbeats_upsert_one_row_per_worker() -> None:
    beat("w@h", 30)
    workers.beat("w@h", 200, NOW, NOW + SECOND, NOW + 31 * SECOND, 2, 3)
    row = Worker.objects.get()
    assert (row.pid, row.active, row.reserved, row.stopped_at) == (200, 2, 3, None)
