"""The metrics' counters on a real database: what a flush adds, once, and never takes back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasktrail import store
from tasktrail.store import expiry, rollup

pytestmark = pytest.mark.django_db(transaction=True)


def record(task_id: str, state: str, attempt: int = 1, **values: object) -> None:
    store.record(store.event(task_id, state, attempt, timezone.now(), **values))


def counters() -> dict[tuple[str, str, str], tuple[int, float]]:
    return {(c.name, c.kind, c.label): (c.count, c.total) for c in rollup.read()}


def test_buckets_follow_prometheus_le() -> None:
    assert rollup.bucket(0) == "0.005"
    assert rollup.bucket(0.005) == "0.005"
    assert rollup.bucket(0.0051) == "0.01"
    assert rollup.bucket(3600) == "3600.0"
    assert rollup.bucket(3601) == "+Inf"
    assert rollup.LABELS[-1] == "+Inf" and len(rollup.LABELS) == len(rollup.BOUNDS) + 1


def test_an_outcome_counts_once_with_its_wait_and_run_time() -> None:
    now = timezone.now()
    sent, started, finished = now - timedelta(seconds=3), now - timedelta(seconds=2), now
    record("r1", "PENDING", name="app.add", sent_at=sent)
    store.flush()
    record("r1", "STARTED", worker="w1", started_at=started)
    store.flush()
    assert counters() == {}
    record("r1", "SUCCESS", result="1", finished_at=finished)
    store.flush()
    # The same outcome reported again (a replayed message) adds nothing.
    record("r1", "SUCCESS", result="1", finished_at=finished)
    store.flush()
    found = counters()
    assert found[("app.add", rollup.TASKS, "SUCCESS")] == (1, 0.0)
    assert found[("app.add", rollup.WAIT, "1.0")] == (1, pytest.approx(1.0, abs=0.01))
    assert found[("app.add", rollup.RUN, "2.5")] == (1, pytest.approx(2.0, abs=0.01))
    assert len(found) == 3


def test_a_refused_report_is_history_not_an_outcome() -> None:
    record("r2", "STARTED", name="app.add", worker="w1")
    record("r2", "SUCCESS", result="1")
    store.flush()
    record("r2", "FAILURE", error_type="ValueError")
    store.flush()
    found = counters()
    assert ("app.add", rollup.TASKS, "FAILURE") not in found
    assert found[("app.add", rollup.TASKS, "SUCCESS")][0] == 1


def test_retries_count_per_attempt_even_when_overtaken_in_one_flush() -> None:
    record("r3", "STARTED", name="app.flaky", worker="w1")
    record("r3", "RETRY", 1, error_type="IOError")
    record("r3", "STARTED", 2, worker="w1")
    record("r3", "RETRY", 2, error_type="IOError")
    record("r3", "STARTED", 3, worker="w1")
    record("r3", "FAILURE", 3, error_type="IOError")
    store.flush()
    found = counters()
    assert found[("app.flaky", rollup.RETRIES, "")][0] == 2
    assert found[("app.flaky", rollup.TASKS, "FAILURE")][0] == 1
    # A retried task's wait would include its countdowns: only first attempts have one.
    assert not any(kind == rollup.WAIT for _, kind, _ in found)


def test_lost_then_finished_counts_both() -> None:
    record("r4", "STARTED", name="app.slow", worker="w1")
    store.flush()
    record("r4", "LOST", 0, error_type="tasktrail.WorkerLost")
    store.flush()
    record("r4", "SUCCESS", result="1")
    store.flush()
    found = counters()
    assert found[("app.slow", rollup.TASKS, "LOST")][0] == 1
    assert found[("app.slow", rollup.TASKS, "SUCCESS")][0] == 1


def test_counters_survive_expiry() -> None:
    record("r5", "PENDING", name="app.add")
    record("r5", "FAILURE", error_type="ValueError", expires_at=timezone.now())
    store.flush()
    before = counters()
    assert before[("app.add", rollup.TASKS, "FAILURE")][0] == 1
    expiry.delete_tasks(timezone.now() + timedelta(seconds=1), 100, None)
    assert not store.get_many(["r5"])
    assert counters() == before


def test_the_wait_of_a_task_whose_outcome_landed_before_its_sending_counts_once() -> None:
    now = timezone.now()
    started = now - timedelta(seconds=1)
    # The worker's flush first: the producer's PENDING (with sent_at) comes after.
    record("r6", "STARTED", name="app.add", worker="w1", started_at=started)
    record("r6", "SUCCESS", result="1", finished_at=now)
    store.flush()
    assert not any(kind == rollup.WAIT for _, kind, _ in counters())
    record("r6", "PENDING", name="app.add", sent_at=started - timedelta(seconds=0.2))
    store.flush()
    record("r6", "PENDING", name="app.add", sent_at=started - timedelta(seconds=0.2))
    store.flush()
    found = counters()
    assert found[("app.add", rollup.WAIT, "0.25")] == (1, pytest.approx(0.2, abs=0.01))
    assert found[("app.add", rollup.TASKS, "SUCCESS")][0] == 1
