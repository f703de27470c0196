"""The history is a faithful record (SQLite and PostgreSQL): every transition that
happened, each once, oldest first; attempts read from it end where they ended."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tasktrail
from tasktrail import runs, states, store
from tasktrail.records import Transition

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fresh(prefix: str) -> str:
    # The buffer remembers the last state of each id it has seen, across tests.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def event(task_id: str, state: str, attempt: int, second: float, **values: Any) -> None:
    store.record(store.event(task_id, state, attempt, T0 + timedelta(seconds=second), **values))


def listed(task_id: str) -> list[tuple[str, int]]:
    return [(t.state, t.attempt) for t in tasktrail.history(task_id)]


def test_a_revoke_decided_before_the_task_ran_is_in_history_and_attempts() -> None:
    task_id = fresh("revoked-waiting")
    event(task_id, "PENDING", 1, 0)
    store.flush()
    # services.revoke and a lost-worker check record outcomes without an attempt.
    event(task_id, "REVOKED", 0, 1, error_type="celery.exceptions.TaskRevokedError")
    store.flush()
    assert listed(task_id) == [("PENDING", 1), ("REVOKED", 1)]
    # The worker that later receives the message reports the revoke again: not listed twice.
    event(task_id, "REVOKED", 1, 2)
    store.flush()
    assert listed(task_id) == [("PENDING", 1), ("REVOKED", 1)]
    assert [(a.number, a.state) for a in tasktrail.attempts(task_id)] == [(1, "REVOKED")]


def test_a_revoke_in_the_same_flush_as_the_pending_takes_its_attempt() -> None:
    task_id = fresh("revoked-same-flush")
    event(task_id, "PENDING", 1, 0)
    event(task_id, "REVOKED", 0, 1)
    store.flush()
    assert listed(task_id) == [("PENDING", 1), ("REVOKED", 1)]


def test_a_task_run_again_after_it_succeeded_lists_nothing_twice() -> None:
    task_id = fresh("replayed")
    for state, second in (("PENDING", 0), ("STARTED", 1), ("SUCCESS", 2)):
        event(task_id, state, 1, second)
    store.flush()
    # The same message run again (replayed, or delivered twice): the row stays SUCCESS.
    event(task_id, "STARTED", 1, 3)
    event(task_id, "SUCCESS", 1, 4)
    store.flush()
    assert tasktrail.get(task_id).state == "SUCCESS"
    assert listed(task_id) == [("PENDING", 1), ("STARTED", 1), ("SUCCESS", 1)]


def test_history_is_oldest_first_after_out_of_order_flushes() -> None:
    """A flush delayed by an outage lands after the next attempt's: its transitions
    happened first, and are listed first (and the attempts' durations follow)."""
    task_id = fresh("out-of-order")
    event(task_id, "STARTED", 2, 10, worker="w2")
    event(task_id, "SUCCESS", 2, 11)
    store.flush()
    event(task_id, "STARTED", 1, 1, worker="w1")
    event(task_id, "RETRY", 1, 2, error_type="OSError")
    store.flush()
    assert listed(task_id) == [("STARTED", 1), ("RETRY", 1), ("STARTED", 2), ("SUCCESS", 2)]
    found = [(a.number, a.state, a.worker) for a in tasktrail.attempts(task_id)]
    assert found == [(1, "RETRY", "w1"), (2, "SUCCESS", "w2")]
    assert tasktrail.get(task_id).state == "SUCCESS"


def test_random_sequences_list_each_transition_once_and_oldest_first() -> None:
    rng = random.Random(20261201)
    names = ["PENDING", "RECEIVED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "LOST"]
    for sequence in range(40):
        task_id = fresh(f"random-{sequence}")
        for _ in range(rng.randint(1, 10)):
            state, attempt = rng.choice(names), rng.randint(0, 3)
            event(task_id, state, attempt, rng.uniform(0, 100))
            if rng.random() < 0.5:
                store.flush()
        store.flush()
        history = tasktrail.history(task_id)
        keys = [(t.state, t.attempt) for t in history]
        assert len(keys) == len(set(keys)), (sequence, keys)
        assert [t.at for t in history] == sorted(t.at for t in history), sequence
        assert all(t.attempt > 0 for t in history), "attempt 0 is resolved when written"
        # The state the row ended in is listed (it was accepted, so it happened).
        assert tasktrail.get(task_id).state in {t.state for t in history}, sequence


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def transition(state: str, attempt: int, second: int, worker: str = "w") -> Transition:
    return Transition(state, attempt, at(second), worker, {})


def test_an_attempt_killed_without_an_outcome_ends_when_the_next_one_starts() -> None:
    """A run whose process died (reject_on_worker_lost, a re-delivered message) reports
    no outcome; the next attempt's start says it is over."""
    history = [
        transition(states.PENDING, 1, 0),
        transition(states.STARTED, 1, 1, "w1"),
        transition(states.STARTED, 2, 5, "w2"),
        transition(states.SUCCESS, 2, 6, "w2"),
    ]
    attempts = runs.from_history(history)
    assert [(a.number, a.state) for a in attempts] == [(1, states.LOST), (2, states.SUCCESS)]
    assert attempts[0].finished_at is None
    assert attempts[0].error is not None and "attempt 2" in attempts[0].error.message


def test_a_running_last_attempt_stays_running() -> None:
    history = [transition(states.STARTED, 1, 1)]
    assert [(a.number, a.state) for a in runs.from_history(history)] == [(1, states.STARTED)]
