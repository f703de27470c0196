"""Retry policies in a real worker: every attempt is recorded, the last error ends it.

``tests.testapp.tasks.unreliable`` carries a tasktrail policy: 3 attempts, backoff from
0.5 s with full jitter, retrying on ``OSError`` without calling ``self.retry()``.
"""

from __future__ import annotations

from typing import Any

import pytest

import tasktrail
from tests.testapp import tasks

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _worker(worker: Any) -> None:
    """Every test here needs the session's worker."""


def test_a_policy_retries_on_its_exceptions_and_records_each_attempt() -> None:
    result = tasks.unreliable.delay(2)
    assert result.get(timeout=30) == "ok on attempt 3"
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.max_retries, record.error) == (
        "SUCCESS",
        3,
        2,
        None,
    )
    first, second, third = tasktrail.attempts(result.id)
    assert [a.state for a in (first, second, third)] == ["RETRY", "RETRY", "SUCCESS"]
    for number, attempt in enumerate((first, second), start=1):
        assert attempt.number == number and attempt.error is not None
        assert (attempt.error.type, attempt.error.message) == (
            "OSError",
            f"disk {number} unavailable",
        )
        assert attempt.error.traceback and "raise OSError" in attempt.error.traceback
    for attempt in (first, second, third):
        assert attempt.worker.startswith("itest@") and attempt.worker_pid
        assert attempt.started_at and attempt.finished_at
        assert attempt.started_at <= attempt.finished_at
    assert first.finished_at <= second.started_at  # type: ignore[operator]


def test_a_final_failure_shows_every_attempt_and_the_last_error() -> None:
    result = tasks.unreliable.delay(10)
    with pytest.raises(OSError, match="disk 3 unavailable"):
        result.get(timeout=30)
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.retries_left) == ("FAILURE", 3, 0)
    assert record.error and record.error.message == "disk 3 unavailable"
    attempts = tasktrail.attempts(result.id)
    assert [(a.number, a.state) for a in attempts] == [(1, "RETRY"), (2, "RETRY"), (3, "FAILURE")]
    assert [a.error.message for a in attempts if a.error] == [
        f"disk {n} unavailable" for n in (1, 2, 3)
    ]


def test_the_next_retry_time_is_visible_while_waiting() -> None:
    # Celery's own self.retry(countdown=...) composes: tasktrail records it the same way.
    result = tasks.flaky.delay(1, countdown=2.0)
    waiting = wait_for(result.id, lambda r: r.state == "RETRY")
    assert waiting.next_retry_at is not None and waiting.next_retry_at > waiting.updated_at
    [attempt] = tasktrail.attempts(result.id)
    assert attempt.state == "RETRY" and attempt.error and attempt.error.type == "ConnectionError"
    assert result.get(timeout=20) == "ok after 2 attempts"


def test_queue_wait_of_a_retried_task_leaves_out_its_countdown() -> None:
    # The worker notes on STARTED when the retry became due (the message's eta), so the
    # overview's wait is the queue's delay, not the 2 s countdown the task asked for.
    from django.utils import timezone

    from tasktrail.store import overview

    result = tasks.flaky.delay(1, countdown=2.0)
    assert result.get(timeout=20) == "ok after 2 attempts"
    record = wait_for(result.id, lambda r: r.state == "SUCCESS")
    assert record.sent_at is not None and record.started_at is not None
    since_sent = (record.started_at - record.sent_at).total_seconds()
    timings = {t.name: t for t in overview.timings(timezone.now())}
    wait = timings["tests.testapp.tasks.flaky"].wait["p99"]
    # From its sending to its start the task waited the countdown and more; its queue
    # wait is what remains once the countdown is left out.
    assert wait is not None and since_sent - wait >= 2.0, (since_sent, wait)
