"""Heartbeats, leases and the lost-task check on a real database (SQLite and PostgreSQL).

The processes around it (workers killed for real, outages through a proxy) are in
tests/integration/test_lost.py; here the check's decisions are driven from heartbeat
rows written directly, and from heartbeats written by a worker whose clock is wrong.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

import tasktrail
from tasktrail import conf, store
from tasktrail.celery import attempts, progress, reaper, recorder, upkeep
from tasktrail.models import Lease, Worker
from tasktrail.store import workers
from tests.conftest import heartbeat_row
from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
SECOND = timedelta(seconds=1)


def beat(hostname: str, silent_in: float, started: datetime = NOW - 60 * SECOND) -> None:
    """A heartbeat row ``silent_in`` seconds (from now: it is judged by the database's
    clock, not the module's NOW) before the worker counts as silent."""
    heartbeat_row(hostname, 100, started, NOW, timezone.now() + silent_in * SECOND, 1, 0)


def running(
    task_id: str, worker: str, name: str = "tests.testapp.tasks.sleepy", **values: object
) -> None:
    values.setdefault("started_at", NOW - 30 * SECOND)
    store.record(store.event(task_id, "STARTED", 1, NOW, name=name, worker=worker, **values))
    store.flush()


def test_a_lease_has_one_holder_until_it_expires_or_is_released() -> None:
    assert workers.claim("chore", "a", 10)
    assert not workers.claim("chore", "b", 10)
    assert workers.claim("chore", "a", -1), "the holder renews (here: until a moment ago)"
    assert workers.claim("chore", "b", 10), "expired"
    workers.release("chore", "b")
    assert workers.claim("chore", "c", 10)


def test_a_lease_expires_by_the_databases_clock() -> None:
    """Not by the claimant's: its clock plays no part (none is passed)."""
    before = timezone.now()
    assert workers.claim("chore", "a", 10)
    expires = Lease.objects.get(name="chore").expires_at
    assert before + 9 * SECOND < expires < timezone.now() + 11 * SECOND


def test_orphans_are_running_tasks_of_silent_stopped_or_restarted_workers() -> None:
    beat("silent@h", -1)
    beat("alive@h", 30)
    beat("reborn@h", 30, started=NOW - 5 * SECOND)
    beat("stopped@h", 30)
    workers.stop("stopped@h", 100)
    running("t-silent", "silent@h")
    running("t-alive", "alive@h")
    running("t-reborn-old", "reborn@h")
    running("t-reborn-new", "reborn@h", started_at=NOW - SECOND)
    running("t-stopped", "stopped@h")
    running("t-unknown-worker", "nobody@h")
    store.record(store.event("t-done", "SUCCESS", 1, NOW, worker="silent@h"))
    store.flush()
    found = {o.task_id: o for o in workers.orphans()}
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
        # The run began for progress reports too (as task_prerun does); end it, as
        # task_postrun would, so no later test finds it still running.
        progress.end(task_id)
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
    workers.beat("w@h", 200, NOW, 31 * SECOND, 2, 3)
    row = Worker.objects.get()
    assert (row.pid, row.active, row.reserved, row.stopped_at) == (200, 2, 3, None)


def test_a_heartbeat_is_stamped_by_the_databases_clock() -> None:
    before = timezone.now()
    stamped = workers.beat("w@h", 200, NOW, 31 * SECOND, 0, 0)
    after = timezone.now()
    row = Worker.objects.get()
    # The database runs on this machine in tests, so its clock is ours (SQLite: to 1 ms).
    assert before - SECOND / 1000 <= stamped == row.last_seen <= after
    assert row.silent_after - row.last_seen == 31 * SECOND


def test_liveness_is_judged_by_the_databases_clock_not_the_workers() -> None:
    """A worker whose clock is behind is not silent; one ahead is not alive for longer."""
    for hostname, offset in (("behind@h", -30 * SECOND), ("ahead@h", 60 * SECOND)):
        beat_with_clock_off(hostname, offset)
        # Started after the worker, by the worker's (same wrong) clock.
        running(f"t-{hostname}", hostname, started_at=timezone.now() + offset + SECOND)
    for row in Worker.objects.all():
        assert abs(row.last_seen - timezone.now()) < 5 * SECOND, row.hostname
        assert row.silent_after - row.last_seen == upkeep.silent_in(conf.get())
    assert reaper.reap(app) == 0
    assert tasktrail.get("t-behind@h").state == "STARTED"


def test_a_clock_off_by_more_than_the_threshold_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tasktrail.celery")
    beat_with_clock_off("behind@h", -30 * SECOND)
    beat_with_clock_off("ahead@h", 60 * SECOND)
    beat_with_clock_off("fine@h", upkeep.CLOCK_SKEW_WARNING / 4)
    warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 2, warnings
    # The offset is measured against the database's clock read a moment later, so a
    # slow query (seen: 0.1 s on a loaded machine) shows in the first decimal.
    said = [re.match(r"tasktrail: this worker's clock is ([\d.]+) s (behind|ahead of) the "
                     r"database's \(more than 2 s\)", w) for w in warnings]  # fmt: skip
    assert all(said), warnings
    offsets = [(float(m[1]), m[2]) for m in said if m]
    assert offsets[0][1] == "behind" and abs(offsets[0][0] - 30) < 1, warnings
    assert offsets[1][1] == "ahead of" and abs(offsets[1][0] - 60) < 1, warnings


def beat_with_clock_off(hostname: str, offset: timedelta) -> None:
    """A heartbeat from a worker whose clock is ``offset`` off (positive: ahead)."""
    true_now = timezone.now
    mp = pytest.MonkeyPatch()
    mp.setattr(timezone, "now", lambda: true_now() + offset)
    try:
        upkeep.Upkeep(app, hostname)._beat()
    finally:
        mp.undo()


def test_the_check_never_judges_its_own_main_process_silent() -> None:
    """Whatever its heartbeat row says after an outage, the checker is running."""
    beat("checker@h", -1)
    running("mine", "checker@h")
    running("old-run", "checker@h", started_at=NOW - 90 * SECOND)
    me = workers.MainProcess("checker@h", 100)
    assert reaper.reap(app, me) == 1, "its previous run's task (started before it) is an orphan"
    assert tasktrail.get("old-run").state == "LOST"
    assert tasktrail.get("mine").state == "STARTED"
    other = workers.MainProcess("checker@h", 101)
    assert [o.task_id for o in workers.orphans(other)] == ["mine"], "another pid: silent"


def test_a_check_whose_read_stalled_settles_nothing() -> None:
    beat("gone@h", -1)
    running("lost", "gone@h")
    with pytest.raises(reaper.Stalled):
        reaper.reap(app, read_by=0.0)
    assert tasktrail.get("lost").state == "STARTED"
    assert reaper.reap(app, read_by=float("inf")) == 1
