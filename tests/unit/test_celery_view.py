"""Celery's view of tasktrail's records: Celery's states through AsyncResult and
get_task_meta, tasktrail's own through tasktrail.get (tasktrail.states.celery_state)."""

from __future__ import annotations

import celery
import pytest
from billiard.exceptions import WorkerLostError
from celery.app.task import Context
from celery.result import AsyncResult
from django.utils import timezone

import tasktrail
from tasktrail import states, store
from tasktrail.celery import recorder
from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = pytest.mark.django_db(transaction=True)


def record(task_id: str, state: str, **values: object) -> None:
    store.record(store.event(task_id, state, 1, timezone.now(), **values))


@pytest.mark.parametrize(
    ("state", "ignored", "celery"),
    [
        ("PENDING", False, "PENDING"),
        ("RECEIVED", False, "PENDING"),
        ("STARTED", False, "STARTED"),
        ("RETRY", False, "RETRY"),
        ("PROGRESS", False, "PROGRESS"),
        ("SUCCESS", False, "SUCCESS"),
        ("FAILURE", False, "FAILURE"),
        ("REVOKED", False, "REVOKED"),
        ("LOST", False, "FAILURE"),
        # Celery's backends store nothing for an ignored result but update_state's states.
        ("RECEIVED", True, "PENDING"),
        ("STARTED", True, "PENDING"),
        ("RETRY", True, "PENDING"),
        ("SUCCESS", True, "PENDING"),
        ("FAILURE", True, "PENDING"),
        ("LOST", True, "PENDING"),
        ("PROGRESS", True, "PROGRESS"),
    ],
)
def test_celery_state_maps_tasktrail_states_to_celerys(
    state: str, ignored: bool, celery: str
) -> None:
    assert states.celery_state(state, ignored) == celery


def test_every_state_celery_sees_is_celerys_or_custom() -> None:
    from celery import states as celery_states

    for state in states.BUILTIN_STATES:
        assert states.celery_state(state) in celery_states.ALL_STATES


def test_received_reads_pending_to_celery_and_received_to_tasktrail() -> None:
    record("v1", "PENDING", name="tests.testapp.tasks.add")
    record("v1", "RECEIVED", worker="w1")
    result = AsyncResult("v1", app=app)
    assert (result.status, result.ready(), result.result) == ("PENDING", False, None)
    assert app.backend.get_task_meta("v1")["status"] == "PENDING"
    assert tasktrail.get("v1").state == "RECEIVED"


def test_lost_reads_as_a_failure_that_raises_the_worker_lost_error() -> None:
    record("v2", "STARTED", worker="w1")
    recorder.settled(app, "v2", "", states.LOST, WorkerLostError("worker w1 vanished"), 1)
    result = AsyncResult("v2", app=app)
    assert (result.status, result.ready(), result.failed()) == ("FAILURE", True, True)
    with pytest.raises(WorkerLostError, match="worker w1 vanished"):
        result.get(timeout=1, propagate=True)
    assert tasktrail.get("v2").state == "LOST"


def test_an_ignored_result_reads_pending_to_celery_without_result() -> None:
    record("v3", "STARTED", ignore_result=True)
    record("v3", "SUCCESS", result="3")
    meta = app.backend.get_task_meta("v3")
    assert (meta["status"], meta["result"], meta["date_done"]) == ("PENDING", None, None)
    assert meta["traceback"] is None
    assert tasktrail.get("v3").state == "SUCCESS"


def test_a_custom_state_an_ignored_task_set_itself_reads_as_celery_stored_it() -> None:
    record("v4", "STARTED", ignore_result=True)
    record("v4", "PROGRESS", result='{"current": 1, "total": 4}')
    meta = app.backend.get_task_meta("v4")
    assert (meta["status"], meta["result"]) == ("PROGRESS", {"current": 1, "total": 4})


def test_the_first_sender_or_worker_that_knows_ignore_result_decides() -> None:
    # send_task() says nothing (None); the worker, which knows the task, says True.
    record("v5", "PENDING", ignore_result=None)
    record("v5", "STARTED", ignore_result=True)
    record("v5", "SUCCESS", result="3")
    assert app.backend.get_task_meta("v5")["status"] == "PENDING"


@pytest.mark.parametrize(
    ("request_says", "task", "ignored", "ignored_by_celery_5_5"),
    [
        ({}, tasks.add_ignoring_result, True, True),  # send_task(): the request does not say
        ({"ignore_result": None}, tasks.add_ignoring_result, True, True),
        # Celery 5.5's worker publishes nothing for a task that ignores its result.
        ({"ignore_result": False}, tasks.add_ignoring_result, False, True),
        ({"ignore_result": True}, tasks.add, True, True),
        ({}, tasks.add, False, False),
    ],
)
def test_ignores_result_follows_celerys_rule(
    request_says: dict[str, object], task: object, ignored: bool, ignored_by_celery_5_5: bool
) -> None:
    request = Context(id="r1", **request_says)
    if celery.VERSION[:2] < (5, 6):
        assert recorder.ignores_result(task, request) is ignored_by_celery_5_5
        return
    try:
        from celery.app.task import get_actual_ignore_result  # Celery 5.7
    except ImportError:
        from celery.app.trace import get_actual_ignore_result  # Celery 5.6
    assert recorder.ignores_result(task, request) is ignored
    assert bool(get_actual_ignore_result(task, request)) is ignored
