"""Retry policies: the backoff, the settings, and how they compose with Celery's options.

Tasks run eagerly here (``apply()``), through Celery's own retry code; the worker test
``tests/integration/test_retries.py`` runs them for real.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from django.utils import timezone

from tasktrail import conf
from tasktrail.celery import retry
from tasktrail.retries import RetryPolicy, parse

pytestmark = pytest.mark.django_db(transaction=True)


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(backoff=1.5, backoff_max=10, jitter=False)
    assert [policy.delay(n) for n in range(5)] == [1.5, 3.0, 6.0, 10, 10]
    assert policy.delay(10_000) == 10


def test_full_jitter_waits_anywhere_from_zero_to_the_backoff() -> None:
    policy = RetryPolicy(backoff=2, backoff_max=600)
    rng = random.Random(4)
    delays = [policy.delay(3, rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.1 and 15.9 < max(delays) <= 16


def test_a_policy_from_settings_names_exceptions_by_path() -> None:
    policy = parse({"retry_on": "builtins.ConnectionError", "max_attempts": None})
    assert policy.retry_on == (ConnectionError,) and policy.max_retries is None
    assert parse({"backoff": 3}, policy) == RetryPolicy(
        max_attempts=None, backoff=3, retry_on=(ConnectionError,)
    )


def test_reliability_settings_have_documented_defaults() -> None:
    settings = conf.load({})
    assert settings.HEARTBEAT_INTERVAL == timedelta(seconds=5)
    assert settings.CLEANUP_INTERVAL == timedelta(minutes=5)
    assert (settings.CLEANUP_BATCH, settings.RETRY) == (500, None)


class Calls:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def app(settings: Any) -> Celery:
    settings.TASKTRAIL = {
        "RETRY": {"max_attempts": 3, "backoff": 7, "jitter": False, "retry_on": [OSError]}
    }
    app = Celery("retry-tests", set_as_current=False)
    app.conf.task_always_eager = True
    return app


def test_the_project_policy_retries_its_exceptions(app: Celery) -> None:
    calls = Calls()

    @app.task(shared=False)
    def fails() -> None:
        calls.count += 1
        raise OSError("disk")

    retry.apply(app)
    assert (fails.max_retries, fails.default_retry_delay) == (2, 7)
    with pytest.raises(OSError, match="disk"):
        fails.apply().get()
    assert calls.count == 3


def test_explicit_celery_options_win_and_celerys_autoretry_keeps_working(app: Celery) -> None:
    calls = Calls()

    @app.task(shared=False, max_retries=1, autoretry_for=(KeyError,))
    def fails(error: str) -> None:
        calls.count += 1
        raise {"os": OSError, "key": KeyError}[error]("boom")

    retry.apply(app)
    assert fails.max_retries == 1
    with pytest.raises(KeyError):
        fails.apply(("key",)).get()
    assert calls.count == 2
    with pytest.raises(OSError, match="boom"):
        fails.apply(("os",)).get()
    assert calls.count == 4


def test_self_retry_without_countdown_waits_the_policys_backoff(app: Celery) -> None:
    waits: list[float] = []

    @app.task(
        shared=False, bind=True, tasktrail_retry={"max_attempts": 4, "backoff": 2, "backoff_max": 5}
    )
    def retries_itself(self: Any) -> str:
        waits.append(self.default_retry_delay)
        if self.request.retries < 3:
            raise self.retry()
        return "done"

    retry.apply(app)
    assert retries_itself.apply().get() == "done"
    assert waits == [2, 4, 5, 5]


def test_a_task_can_opt_out(app: Celery) -> None:
    @app.task(shared=False, tasktrail_retry=False)
    def plain() -> None:
        raise OSError("not retried")

    retry.apply(app)
    assert plain.max_retries == 3 and plain.default_retry_delay == 180
    assert retry.max_retries(plain) == 3


def test_an_attempt_that_retries_ends_when_its_retry_is_sent() -> None:
    # Celery sends the retry, then reports it (mark_as_retry, task_retry): by then the
    # next attempt may have started in another process, so the report's own time would
    # make the two attempts overlap.
    from celery import signals

    import tasktrail
    from tasktrail import store
    from tasktrail.celery import recorder

    store.record(store.event("retried", "STARTED", 1, timezone.now(), name="t"))
    signals.before_task_publish.send(sender="t", headers={"id": "retried", "retries": 1})
    sent = timezone.now()
    time.sleep(0.05)
    request = SimpleNamespace(retries=0)  # the first attempt's
    recorder.outcome("retried", "RETRY", OSError("disk"), {"exc": "disk"}, None, request, None)
    store.sync()
    ended = tasktrail.history("retried")[-1]
    assert ended.state == "RETRY" and ended.at <= sent
