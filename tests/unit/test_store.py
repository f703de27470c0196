"""The store on a real database: buffering, folding, guards, history, expiry."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

import tasktrail
from tasktrail import conf, store
from tasktrail.models import Task, Transition
from tasktrail.store.buffer import WriteBuffer

pytestmark = pytest.mark.django_db(transaction=True)


def record(task_id: str, state: str, attempt: int = 1, **values: object) -> None:
    store.record(store.event(task_id, state, attempt, timezone.now(), **values))


def test_a_process_reads_its_own_buffered_write_at_once() -> None:
    record("t1", "PENDING", name="app.add")
    assert tasktrail.get("t1").state == "PENDING"
    assert tasktrail.get("t1").name == "app.add"


def test_an_id_never_recorded_is_unknown_not_pending() -> None:
    with pytest.raises(tasktrail.TaskNotFound, match="no task with id 'nope'"):
        tasktrail.get("nope")


@pytest.mark.parametrize("bad", ["", "x" * 300, None, 12])
def test_malformed_ids_are_unknown(bad: object) -> None:
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get(bad)  # type: ignore[arg-type]


def test_late_started_after_success_is_ignored_and_kept_out_of_history() -> None:
    record("t2", "STARTED", worker="w1")
    record("t2", "SUCCESS", result="5")
    store.flush()
    record("t2", "STARTED", worker="w2")
    store.flush()
    rec = tasktrail.get("t2")
    assert (rec.state, rec.result, rec.worker) == ("SUCCESS", 5, "w1")
    assert [t.state for t in tasktrail.history("t2")] == ["STARTED", "SUCCESS"]


def test_a_late_pending_fills_in_what_the_worker_did_not_know() -> None:
    # The worker created the record (the publish-side write was slow); the PENDING
    # event arriving afterwards must add its facts without moving the state back.
    record("t3", "SUCCESS", result="1")
    store.flush()
    record("t3", "PENDING", name="app.add", args="[1, 2]", owner_id=42)
    store.flush()
    rec = tasktrail.get("t3")
    assert (rec.state, rec.name, rec.args, rec.owner_id) == ("SUCCESS", "app.add", [1, 2], 42)


def test_a_progress_flood_becomes_one_row_with_the_latest_value() -> None:
    record("t4", "STARTED")
    for i in range(1, 20_001):
        record("t4", "PROGRESS", progress_current=float(i), progress_total=20_000.0)
    rec = tasktrail.get("t4")
    assert rec.progress is not None
    assert (rec.progress.current, rec.progress.percent) == (20_000.0, 100.0)
    assert [t.state for t in tasktrail.history("t4")] == ["STARTED", "PROGRESS"]


def test_retry_then_next_attempt_clears_the_previous_error() -> None:
    record("t5", "STARTED")
    record("t5", "RETRY", error_type="ConnectionError", next_retry_at=timezone.now())
    store.flush()
    assert tasktrail.get("t5").error is not None
    record("t5", "STARTED", attempt=2)
    rec = tasktrail.get("t5")
    assert (rec.state, rec.attempt, rec.error, rec.next_retry_at) == ("STARTED", 2, None, None)
    assert [(t.state, t.attempt) for t in tasktrail.history("t5")] == [
        ("STARTED", 1),
        ("RETRY", 1),
        ("STARTED", 2),
    ]


def test_a_failed_flush_puts_rows_back_and_loses_nothing() -> None:
    written: list[str] = []
    failures = iter([OperationalError("server closed the connection")])

    def writer(rows: list[dict[str, object]], history: list[object]) -> None:
        for failure in failures:
            raise failure
        written.extend(str(r["task_id"]) for r in rows)

    buffer = WriteBuffer(writer, interval=0.001, max_buffered=100)
    buffer.add(store.event("a", "STARTED", 1, timezone.now()))
    with pytest.raises(OperationalError):
        buffer.flush()
    buffer.add(store.event("b", "STARTED", 1, timezone.now()))
    buffer.flush()
    assert sorted(written) == ["a", "b"]


def test_the_flush_thread_retries_after_a_failure() -> None:
    attempts: list[int] = []
    done = threading.Event()

    def writer(rows: list[dict[str, object]], history: list[object]) -> None:
        attempts.append(len(rows))
        if len(attempts) == 1:
            raise OperationalError("database restarting")
        done.set()

    buffer = WriteBuffer(writer, interval=0.001, max_buffered=100)
    buffer.add(store.event("c", "SUCCESS", 1, timezone.now()))
    assert done.wait(5)
    assert attempts == [1, 1]


def test_expired_rows_are_deleted_in_batches_with_their_history() -> None:
    past = timezone.now() - timedelta(seconds=1)
    for i in range(25):
        record(f"old{i}", "SUCCESS", expires_at=past)
    record("fresh", "SUCCESS", expires_at=timezone.now() + timedelta(days=1))
    record("running", "STARTED")
    store.flush()
    assert store.delete_expired(timezone.now(), batch=10).tasks == 25
    assert set(Task.objects.values_list("task_id", flat=True)) == {"fresh", "running"}
    assert not Transition.objects.filter(task_id__startswith="old").exists()


def test_forget_removes_the_task_and_its_history() -> None:
    record("gone", "SUCCESS")
    store.forget("gone")
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get("gone")
    assert tasktrail.history("gone") == []


def test_recent_lists_newest_first_with_filters() -> None:
    record("r1", "FAILURE", name="x")
    record("r2", "SUCCESS", name="x")
    record("r3", "FAILURE", name="y")
    assert [r.id for r in tasktrail.recent(state="FAILURE")] == ["r3", "r1"]


def test_postgresql_prepares_the_write_statement_but_not_the_users_queries() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's; run with TT_DB=postgres")
    for n in range(3):
        record(f"prep-{n}", "PENDING", name="t")
        store.flush()  # from this thread, so with this test's connection
    with connection.cursor() as cursor:
        # Celery's point read, if an earlier test read through AsyncResult on this
        # connection, is prepared too (tests/unit/test_celery_read.py): not a write.
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement NOT LIKE 'SELECT %'"
        )
        prepared = [row[0] for row in cursor.fetchall()]
    assert len(prepared) == 1 and prepared[0].startswith("WITH up AS (INSERT INTO tasktrail_task")
    # Django's setting (no prepared statements) still holds for everything else.
    assert connection.connection.prepare_threshold is None
    assert tasktrail.get("prep-2").state == "PENDING"


def test_retries_left_counts_down_while_retrying_and_is_zero_once_done() -> None:
    record("r1", "RETRY", 1, name="t", max_retries=3)
    assert tasktrail.get("r1").retries_left == 2
    record("r2", "FAILURE", 1, name="t", max_retries=3)
    assert tasktrail.get("r2").retries_left == 0


def test_postgresql_flushes_notify_their_ids_in_payloads_postgresql_accepts() -> None:
    import psycopg
    from django.db import connection

    from tasktrail.notify.base import parse
    from tasktrail.notify.postgres import CHANNEL

    if connection.vendor != "postgresql" or conf.get().NOTIFY not in ("auto", "postgres"):
        pytest.skip("NOTIFY is PostgreSQL's; run with TT_DB=postgres")
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        ids = [f"{n:03d}-" + "x" * 196 for n in range(300)]  # 60 KB of ids in one flush
        for task_id in ids:
            record(task_id, "PENDING", name="t")
        store.flush()
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=10)]
    assert all(len(p.encode()) < 8000 for p in payloads) and len(payloads) >= 8
    assert sorted(i for p in payloads for i in parse(p)) == ids
