"""The pure rules of tasktrail.tasks: status and priority mapping, retry policies, class
paths, what travels in the message; and the Django version check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django
import pytest

# django.tasks starts at Django 6.0; the version matrix runs tests/unit on 5.2 too, where
# tasktrail.tasks offers nothing (tasktrail.E010 says so; its test is the last one here).
pytest.importorskip("django.tasks", reason="django.tasks needs Django >= 6.0")

from django.core.checks import Error
from django.test import override_settings

from tasktrail import states
from tasktrail.celery.errors import class_path
from tasktrail.retries import RetryPolicy
from tasktrail.tasks import checks, mapping, policy
from tasktrail.tasks.results import Sent
from tests.tasks import djtasks


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (states.PENDING, "READY"),
        (states.RECEIVED, "READY"),
        (states.RETRY, "READY"),
        (states.STARTED, "RUNNING"),
        (states.PROGRESS, "RUNNING"),
        ("UPLOADING", "RUNNING"),
        (states.SUCCESS, "SUCCESSFUL"),
        (states.FAILURE, "FAILED"),
        (states.REVOKED, "FAILED"),
        (states.LOST, "FAILED"),
    ],
)
def test_status(state: str, status: str) -> None:
    assert mapping.status(state) == status


def test_priority_is_higher_first_on_amqp_and_turned_over_on_redis() -> None:
    amqp = [mapping.broker_priority(p, "amqp") for p in (-100, -81, -80, 0, 79, 80, 100)]
    assert amqp == [0, 0, 1, 5, 8, 9, 9]
    redis = [mapping.broker_priority(p, "redis") for p in (-100, 0, 100)]
    assert redis == [9, 4, 0]
    every = [mapping.broker_priority(p, "amqp") for p in range(-100, 101)]
    assert every == sorted(every) and set(every) == set(range(10))


def test_class_paths_are_importable() -> None:
    assert class_path("ValueError") == "builtins.ValueError"
    assert class_path("billiard.exceptions.WorkerLostError") == (
        "billiard.exceptions.WorkerLostError"
    )


def test_a_tasks_celery_options_refine_the_backends_policy() -> None:
    base = RetryPolicy(max_attempts=4, backoff=0.1, jitter=False)
    found = policy.refine(base, 2, (ConnectionError,), 3, 30, None)
    assert found == RetryPolicy(
        max_attempts=3, backoff=3.0, backoff_max=30.0, jitter=False, retry_on=(ConnectionError,)
    )
    assert policy.refine(base, None, (), None, None, None) is base
    assert policy.refine(None, None, (), None, None, None) is None
    assert policy.refine(None, None, (OSError,), True, None, None) == RetryPolicy(
        backoff=1.0, retry_on=(OSError,)
    )


def test_the_backends_options_give_the_default_policy() -> None:
    assert policy.backend_default({}) is None  # TASKTRAIL["RETRY"] unset in the tests
    assert policy.backend_default({"RETRY": {"max_attempts": 2}}) == RetryPolicy(max_attempts=2)
    assert policy.backend_default({"RETRY": False}) is None
    with pytest.raises(ValueError, match="unknown retry option"):
        policy.backend_default({"RETRY": {"attempts": 2}})
    # The test settings' backend: OPTIONS["RETRY"], refined by flaky's @task options.
    assert policy.of(djtasks.flaky) == RetryPolicy(
        max_attempts=3, backoff=0.1, jitter=False, retry_on=(ConnectionError,)
    )


def test_what_travels_rebuilds_the_task_sent() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    for after in (when, timedelta(seconds=90), None):
        task = djtasks.add.using(priority=-7, queue_name="reports", run_after=after)  # type: ignore[arg-type]
        sent = Sent.parse(Sent.of(task).header())
        assert sent is not None and sent.task() == task
    assert Sent.parse({"name": "x"}) is None and Sent.parse("x") is None


def test_the_runner_runs_django_tasks_only() -> None:
    with pytest.raises(LookupError, match="not a django"):
        Sent("tests.testapp.tasks.add", "default", "default", 0, None).task()
    with pytest.raises(LookupError, match="cannot be imported"):
        Sent("tests.nowhere.add", "default", "default", 0, None).task()


def test_a_django_without_django_tasks_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert checks.check_django_version() == []
    monkeypatch.setattr(django, "VERSION", (5, 2, 9, "final", 0))
    with override_settings(TASKS={"default": {"BACKEND": "tasktrail.tasks.CeleryBackend"}}):
        [error] = checks.check_django_version()
    assert isinstance(error, Error) and error.id == "tasktrail.E010"
    assert "needs Django >= 6.0" in error.msg
