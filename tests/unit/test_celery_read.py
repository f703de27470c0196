"""Celery's point read (tasktrail.store.point): what AsyncResult reads, compared with
what the ORM reads of the same row, on the test database (SQLite, or PostgreSQL with
TT_DB=postgres). A process reads its own writes; failures re-raise as stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from celery.result import AsyncResult
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from tasktrail import store
from tasktrail.models import Task
from tasktrail.store import point, rows
from tests.testapp.celeryapp import app

pytestmark = pytest.mark.django_db(transaction=True)

#: A result with every type kombu's JSON round-trips through its markers.
TYPED = {
    "when": datetime(2026, 12, 2, 6, 0, 1, 234567, tzinfo=UTC),
    "amount": Decimal("1.10"),
    "key": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "nested": [1, 2.5, None, True, "é ☃", {"x": []}],
}


def record(task_id: str, state: str, **values: object) -> None:
    store.record(store.event(task_id, state, 1, timezone.now(), **values))


def through_the_orm(task_id: str) -> dict[str, Any]:
    """What the backend read before the point read: every column, a model instance."""
    return rows.celery_meta(Task.objects.get(task_id=task_id))


def store_result(task_id: str, result: object, state: str, traceback: str | None = None) -> None:
    app.backend.store_result(task_id, result, state, traceback=traceback)


WRITES: dict[str, Any] = {
    "success with kombu's types": lambda t: store_result(t, TYPED, "SUCCESS"),
    "success returning None": lambda t: store_result(t, None, "SUCCESS"),
    "failure with a traceback": lambda t: store_result(
        t, ValueError("boom"), "FAILURE", "Traceback (most recent call last):\n  ValueError"
    ),
    "sent, with args and a parent": lambda t: record(
        t, "PENDING", name="app.add", args="[1, 2]", kwargs='{"k": "v"}', parent_id="p1"
    ),
    "received (PENDING to Celery)": lambda t: (
        record(t, "PENDING", name="app.add"),
        record(t, "RECEIVED", worker="w1@h", queue="q1"),
    ),
    "started in a group": lambda t: record(t, "STARTED", worker="w1@h", group_id="g1"),
    "custom state with meta": lambda t: record(t, "PROGRESS", result='{"current": 3}'),
    "ignored result": lambda t: (
        record(t, "STARTED", ignore_result=True),
        record(t, "SUCCESS", result="3"),
    ),
    "children": lambda t: record(
        t, "SUCCESS", result="1", children='[[["c1", null], null], [["c2", null], null]]'
    ),
}


@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
def test_the_point_read_gives_exactly_what_the_orm_read(write: Any) -> None:
    task_id = f"pr-{uuid.uuid4()}"
    write(task_id)
    store.sync()
    meta = store.celery_meta(task_id)
    # repr: the same values and the same types (Decimal("1.10") == 1.1 would pass ==).
    assert repr(meta) == repr(through_the_orm(task_id))


def test_dates_are_aware_and_values_typed_as_stored() -> None:
    store_result("pr-typed", TYPED, "SUCCESS")
    meta = store.celery_meta("pr-typed")
    assert meta is not None
    assert meta["result"] == TYPED and type(meta["result"]["amount"]) is Decimal
    assert meta["date_done"] is not None and meta["date_done"].tzinfo is not None
    assert AsyncResult("pr-typed", app=app).get(timeout=1) == TYPED


def test_unknown_and_malformed_ids_read_as_celery_reads_them() -> None:
    assert store.celery_meta("never-sent") is None
    assert point.read("never-sent") is None
    for bad in ("", "x" * 300, "nul\x00id"):
        assert store.celery_meta(bad) is None
        assert AsyncResult(bad, app=app).status == "PENDING"


def test_a_process_reads_its_own_buffered_write_at_once() -> None:
    # No sync: the read lets this process's buffered write for the id land first.
    for n in range(20):
        store_result(f"own-{n}", {"n": n}, "SUCCESS")
        result = AsyncResult(f"own-{n}", app=app)
        assert (result.status, result.result) == ("SUCCESS", {"n": n})


def test_a_stored_failure_re_raises_its_exception() -> None:
    store_result("pr-fail", KeyError("missing"), "FAILURE", "Traceback ...")
    result = AsyncResult("pr-fail", app=app)
    assert (result.status, result.failed(), result.traceback) == ("FAILURE", True, "Traceback ...")
    with pytest.raises(KeyError, match="missing"):
        result.get(timeout=1)


def test_reads_inside_the_callers_transaction() -> None:
    store_result("pr-tx", 7, "SUCCESS")
    store.sync()
    with transaction.atomic():
        Task.objects.filter(task_id="pr-tx").update(name="renamed in the transaction")
        # The caller's connection, so the caller's transaction: its own change shows.
        assert store.celery_meta("pr-tx")["name"] == "renamed in the transaction"  # type: ignore[index]
        assert AsyncResult("pr-tx", app=app).get(timeout=1) == 7


def test_reads_again_after_the_connection_was_closed() -> None:
    store_result("pr-reconnect", 1, "SUCCESS")
    store.sync()
    for _ in range(3):
        assert AsyncResult("pr-reconnect", app=app).status == "SUCCESS"
    connection.close()
    assert AsyncResult("pr-reconnect", app=app).get(timeout=1) == 1


@pytest.mark.parametrize("prepare", [True, False])
def test_postgresql_prepares_the_read_only_when_allowed(prepare: bool) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's; run with TT_DB=postgres")
    store_result("pr-prep", 2, "SUCCESS")
    store.sync()
    connection.close()  # a session of its own: no statement prepared yet
    with override_settings(TASKTRAIL={"PREPARE_WRITES": prepare}):
        for _ in range(5):
            assert AsyncResult("pr-prep", app=app).get(timeout=1) == 2
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cursor.fetchall()]
    assert [s.startswith("SELECT") for s in prepared] == ([True] if prepare else [])
    # Django's setting (no prepared statements) still holds for the user's queries.
    assert connection.connection.prepare_threshold is None
