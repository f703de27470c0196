"""Attempts read from a task's history: pure code, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasktrail.records import Transition
from tasktrail.runs import from_history

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def step(n: int, state: str, attempt: int, worker: str = "", **detail: Any) -> Transition:
    return Transition(state, attempt, T0 + timedelta(seconds=n), worker, detail)


def test_waiting_alone_is_no_attempt() -> None:
    assert from_history([step(0, "PENDING", 1), step(1, "RECEIVED", 1, "w")]) == []


def test_each_attempt_has_its_worker_times_and_error() -> None:
    attempts = from_history(
        [
            step(0, "PENDING", 1),
            step(1, "STARTED", 1, "w1", pid=11),
            step(2, "PROGRESS", 1, "w1"),
            step(3, "RETRY", 1, "w1", error_type="OSError", error_message="disk", traceback="tb"),
            step(4, "STARTED", 2, "w2", pid=22),
            step(5, "SUCCESS", 2, "w2"),
        ]
    )
    first, second = attempts
    assert (first.number, first.state, first.worker, first.worker_pid) == (1, "RETRY", "w1", 11)
    assert (first.started_at, first.finished_at) == (
        T0 + timedelta(1 / 86400),
        T0 + timedelta(seconds=3),
    )
    assert first.error and (first.error.type, first.error.message, first.error.traceback) == (
        "OSError",
        "disk",
        "tb",
    )
    assert (second.state, second.worker, second.error) == ("SUCCESS", "w2", None)


def test_a_running_attempt_shows_its_current_state() -> None:
    [attempt] = from_history([step(0, "STARTED", 1, "w"), step(1, "UPLOADING", 1, "w")])
    assert (attempt.state, attempt.finished_at) == ("UPLOADING", None)


def test_a_lost_attempt_replaced_by_its_real_outcome() -> None:
    history = [
        step(0, "STARTED", 1, "w"),
        step(1, "LOST", 1, "", error_type="WorkerLostError", error_message="silent"),
        step(2, "SUCCESS", 1, "w"),
    ]
    [attempt] = from_history(history)
    assert (attempt.state, attempt.error, attempt.worker) == ("SUCCESS", None, "w")


def test_an_outcome_without_an_attempt_number_belongs_to_the_latest() -> None:
    history = [
        step(0, "STARTED", 1, "w"),
        step(1, "RETRY", 1, "w"),
        step(2, "REVOKED", 0, "", error_type="TaskRevokedError", error_message="revoked"),
    ]
    first, *rest = from_history(history)
    assert (first.state, rest) == ("REVOKED", [])
