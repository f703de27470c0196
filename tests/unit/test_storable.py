"""One bad value never stops the recording of other tasks (SQLite and PostgreSQL).

Each poison value is buffered beside clean tasks and flushed in the same statement:
the flush must succeed, every clean task must be recorded as sent, and the poison
task must be recorded with its value made storable (first line of defence), or with a
storage error when the database refuses it anyway (second line).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

import tasktrail
from tasktrail import jsoncodec, states, store
from tasktrail.store import storable, write
from tasktrail.store.history import HistoryEntry

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "\x00"
LONE = "\ud800"
FFFD = "\ufffd"


def clean_neighbours(n: int = 3) -> list[str]:
    # Fresh ids: the buffer remembers the last state of each id it has seen.
    ids = [f"clean-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
    for i, task_id in enumerate(ids):
        store.record(store.event(task_id, "SUCCESS", 1, timezone.now(), result=str(i)))
    return ids


def assert_neighbours_recorded(ids: list[str]) -> None:
    assert [tasktrail.get(t).result for t in ids] == list(range(len(ids)))
    assert all([h.state for h in tasktrail.history(t)] == ["SUCCESS"] for t in ids)


POISONS: list[tuple[str, dict[str, Any], str, Any]] = [
    # (case, event fields, field of the record to read, expected value)
    ("NUL in args", {"args": jsoncodec.dumps(["a" + NUL])}, "args", ["a" + FFFD]),
    ("NUL in kwargs", {"kwargs": jsoncodec.dumps({"k" + NUL: NUL})}, "kwargs", {"k" + FFFD: FFFD}),
    ("NUL in result", {"result": jsoncodec.dumps("a" + NUL + "b")}, "result", "a" + FFFD + "b"),
    ("NUL in meta", {"progress_current": 1.0, "meta": jsoncodec.dumps({"m": NUL})}, "meta", None),
    ("NUL in name", {"name": "app" + NUL}, "name", "app" + FFFD),
    ("NUL in worker", {"worker": "w" + NUL}, "worker", "w" + FFFD),
    ("surrogate in name", {"name": "app" + LONE}, "name", "app" + FFFD),
    ("surrogate in args", {"args": jsoncodec.dumps([LONE])}, "args", [FFFD]),
    ("long name", {"name": "n" * 300}, "name", "n" * 254 + "…"),
    ("long queue", {"queue": "q" * 300}, "queue", "q" * 254 + "…"),
    ("long parent id", {"parent_id": "p" * 300}, "parent_id", ""),
    ("huge max_retries", {"max_retries": 2**40}, "max_retries", None),
    ("huge attempt", {}, "attempt", 0),
    ("owner not a key", {"owner_id": "not-a-pk"}, "owner_id", None),
    ("owner out of range", {"owner_id": 10**30}, "owner_id", None),
    ("escaped backslash kept", {"args": jsoncodec.dumps(["\\u0000"])}, "args", ["\\u0000"]),
    ("emoji kept", {"args": jsoncodec.dumps(["\U0001f600"])}, "args", ["\U0001f600"]),
]


@pytest.mark.parametrize(
    ("case", "fields", "column", "expected"), POISONS, ids=[p[0] for p in POISONS]
)
def test_a_poison_value_is_made_storable_and_its_neighbours_are_recorded(
    case: str, fields: dict[str, Any], column: str, expected: Any
) -> None:
    neighbours = clean_neighbours()
    attempt = 2**40 if case == "huge attempt" else 1
    store.record(store.event("poison", "STARTED", attempt, timezone.now(), **fields))
    assert store.sync(), "the flush must not be stuck behind the poison row"
    assert_neighbours_recorded(neighbours)
    record = tasktrail.get("poison")
    if column == "meta":
        assert record.progress is not None
        assert record.progress.meta == {"m": FFFD}
    else:
        assert getattr(record, column) == expected


def test_nul_in_error_and_progress_text_is_replaced() -> None:
    neighbours = clean_neighbours()
    store.record(
        store.event(
            "poison-text",
            "FAILURE",
            1,
            timezone.now(),
            error_type="Boom" + NUL,
            error_message="bad" + NUL + "value",
            traceback="Traceback" + NUL,
            progress_current=1.0,
            progress_message="step" + NUL,
        ),
        {"error_message": "bad" + NUL + "value"},
    )
    assert store.sync()
    assert_neighbours_recorded(neighbours)
    record = tasktrail.get("poison-text")
    assert record.error is not None
    assert (record.error.type, record.error.message) == ("Boom" + FFFD, "bad" + FFFD + "value")
    assert record.error.traceback == "Traceback" + FFFD
    assert record.progress is not None and record.progress.message == "step" + FFFD
    assert tasktrail.history("poison-text")[0].detail == {"error_message": "bad" + FFFD + "value"}


def test_a_long_error_type_is_cut_with_a_marker() -> None:
    store.record(store.event("long-type", "FAILURE", 1, timezone.now(), error_type="E" * 300))
    assert store.sync()
    error = tasktrail.get("long-type").error
    assert error is not None and error.type == "E" * 254 + "…"


def test_non_finite_progress_is_left_out() -> None:
    store.record(
        store.event(
            "nan", "PROGRESS", 1, timezone.now(), progress_current=1.0, progress_total=float("inf")
        )
    )
    store.record(store.event("nan2", "PROGRESS", 1, timezone.now(), progress_current=float("nan")))
    assert store.sync()
    progress = tasktrail.get("nan").progress
    assert progress is not None and (progress.current, progress.total) == (1.0, None)
    assert tasktrail.get("nan2").progress is None


@pytest.mark.parametrize("task_id", ["t" * 256, "a" + NUL + "b", ""])
def test_a_task_id_the_table_cannot_hold_is_not_recorded_and_blocks_nothing(
    task_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    neighbours = clean_neighbours()
    store.record(store.event(task_id, "PENDING", 1, timezone.now()))
    assert store.sync()
    assert_neighbours_recorded(neighbours)
    assert "not recording task id" in caplog.text
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.get(task_id)


def test_a_state_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(states.InvalidState):
        store.event("t", "A" * 50 + "\n", 1, timezone.now())
    with pytest.raises(states.InvalidState):
        store.event("t", "A" * 51, 1, timezone.now())
    assert store.event("t", "A" * 50, 1, timezone.now())["state"] == "A" * 50


# -- the second line: a row the database refuses although it passed the first ---------


def raw_event(task_id: str, state: str = "SUCCESS", **values: Any) -> dict[str, Any]:
    """An event that skips the first line of defence, as a future column might."""
    return store.event(task_id, state, 1, timezone.now(), **values)


def entry(row: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(row["task_id"], row["state"], 1, row["updated_at"], "", None)


def refused_value() -> dict[str, Any]:
    """A value this database refuses: a NUL in text on PostgreSQL; an integer wider than
    64 bits on SQLite (it stores any text)."""
    if connection.vendor == "postgresql":
        return {"error_message": "x" + NUL}
    return {"max_retries": 2**70}


def test_a_refused_row_is_isolated_and_recorded_with_a_storage_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [raw_event(f"ok-{i}", result=str(i)) for i in range(7)]
    rows.insert(3, raw_event("refused", "FAILURE", error_type="ValueError", **refused_value()))
    write.write(rows, [entry(r) for r in rows])
    assert [tasktrail.get(f"ok-{i}").result for i in range(7)] == list(range(7))
    record = tasktrail.get("refused")
    assert record.state == "FAILURE"
    assert record.error is not None and record.error.type == storable.STORAGE_ERROR
    assert "the database refused a value" in record.error.message
    assert [h.state for h in tasktrail.history("refused")] == ["FAILURE"]
    assert "the database refused the FAILURE event of task refused" in caplog.text


def test_a_database_that_cannot_be_reached_still_raises_so_the_buffer_keeps_its_rows() -> None:
    """Isolation is for values the database refuses, not for outages: those are retried."""
    from django.db import DatabaseError

    rows = [raw_event("kept")]

    def unreachable(_: Any, __: Any) -> None:
        raise DatabaseError("connection refused")

    with pytest.raises(DatabaseError):
        storable.isolate(unreachable, rows, [entry(r) for r in rows])
