"""The spool and the buffer's bounded final flush, on a real database and real files.

The worker-level behaviour (pool processes retiring, warm shutdowns, producers exiting
during an outage) is in tests/integration/test_outage_exits.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.db import DataError, OperationalError
from django.utils import timezone as django_timezone

import tasktrail
from tasktrail import checks, store
from tasktrail.store import spool
from tasktrail.store.buffer import WriteBuffer

pytestmark = pytest.mark.django_db(transaction=True)

Rows = list[dict[str, Any]]


@pytest.fixture(autouse=True)
def spool_dir(settings: Any, tmp_path: Path) -> Path:
    settings.TASKTRAIL = {**settings.TASKTRAIL, "SPOOL_DIR": str(tmp_path / "spool")}
    return tmp_path / "spool"


def _row(task_id: str, state: str = "SUCCESS", **values: Any) -> dict[str, Any]:
    return store.event(task_id, state, 1, django_timezone.now(), **values)


def test_rows_and_history_come_back_exactly_as_spooled() -> None:
    at = datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    row = store.event(
        "t1",
        "SUCCESS",
        2,
        at,
        result='{"é":[1,2.5,null]}',
        started_at=at - timedelta(microseconds=1),
        worker="w@h",
        worker_pid=41,
        owner_id=7,
        progress_current=0.1,
    )
    detail = {"when": datetime(2026, 1, 1, tzinfo=UTC), "pid": 41, "why": "ünïcode"}
    history = [("t1", "SUCCESS", 2, at, "w@h", detail), ("t1", "STARTED", 2, at, "w@h", None)]
    spool.write([row], history)
    seen: list[tuple[Rows, list[Any]]] = []
    assert spool.replay_into(lambda r, h: seen.append((r, h))) == 1
    assert seen == [([row], history)]
    assert seen[0][0][0]["updated_at"].utcoffset() == timedelta(hours=5, minutes=30)


def test_a_file_is_deleted_only_once_its_rows_are_committed(spool_dir: Path) -> None:
    spool.write([_row("t2")], [])

    def refuse(rows: Rows, history: list[Any]) -> None:
        raise OperationalError("connection refused")

    assert spool.replay_into(refuse) == 0
    assert len(spool.pending()) == 1
    assert spool.replay_into(lambda r, h: None) == 1
    assert spool.pending() == [] and list(spool_dir.iterdir()) == []


def test_files_replay_oldest_first_through_the_guarded_write() -> None:
    # An older state spooled after a newer one was stored does not move the task back.
    spool.write([_row("t3", "STARTED", worker="w1")], [])
    spool.write([_row("t3", "SUCCESS", result="3")], [])
    spool.write([_row("t3", "STARTED", worker="w2")], [])
    spool.replay()
    record = tasktrail.get("t3")
    assert (record.state, record.result, record.worker) == ("SUCCESS", 3, "w1")
    assert spool.pending() == []


def test_unreadable_or_refused_files_are_set_aside_and_the_rest_written(spool_dir: Path) -> None:
    spool.write([_row("t4")], [])
    (spool_dir / "00000000000000000001-1-bad.spool").write_text("{not json")
    (spool_dir / "00000000000000000002-1-old.spool").write_text('{"format": 99}')
    written: list[str] = []

    def writer(rows: Rows, history: list[Any]) -> None:
        if rows[0]["task_id"] == "poison":
            raise DataError("invalid input syntax")
        written.extend(r["task_id"] for r in rows)

    spool.write([_row("poison")], [])
    spool.write([_row("t5")], [])
    spool.replay_into(writer)
    assert written == ["t4", "t5"]
    bad = {p.name for p in spool_dir.glob("*.bad")}
    assert {"00000000000000000001-1-bad.bad", "00000000000000000002-1-old.bad"} < bad
    assert len(bad) == 3 and spool.pending() == []


def test_files_are_private_to_the_user(spool_dir: Path) -> None:
    path = spool.write([_row("t6")], [])
    assert path.parent == spool_dir
    assert path.stat().st_mode & 0o777 == 0o600
    assert spool_dir.stat().st_mode & 0o777 == 0o700


def test_close_spools_what_a_write_blocked_on_a_dead_connection_holds() -> None:
    blocked, release = threading.Event(), threading.Event()
    spilled: list[tuple[Rows, list[Any]]] = []

    def stuck(rows: Rows, history: list[Any]) -> None:
        blocked.set()
        release.wait()
        raise OperationalError("server closed the connection")

    buffer = WriteBuffer(
        stuck, 0.001, 100, spill=lambda r, h: spilled.append((r, h)), close_timeout=0.2
    )
    buffer.add(_row("a", "STARTED"))
    assert blocked.wait(5)
    buffer.add(_row("a", "SUCCESS", result="1"))
    buffer.add(_row("b", "PENDING"))
    # Run close() in a thread: if it waited on the stuck write, the test would hang.
    closer = threading.Thread(target=buffer.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    [(rows, history)] = spilled
    assert {r["task_id"]: r["state"] for r in rows} == {"a": "SUCCESS", "b": "PENDING"}
    assert [(h[0], h[1]) for h in history] == [("a", "STARTED"), ("a", "SUCCESS"), ("b", "PENDING")]
    # The write fails at last: its rows belong to the spool now, not to the buffer.
    release.set()
    buffer.close()
    assert len(spilled) == 1


def test_close_writes_normally_when_the_database_answers() -> None:
    written: Rows = []
    spilled: list[Rows] = []
    buffer = WriteBuffer(
        lambda r, h: written.extend(r), 0.001, 100, spill=lambda r, h: spilled.append(r)
    )
    buffer.add(_row("c"))
    buffer.close()
    assert [r["task_id"] for r in written] == ["c"] and spilled == []


def test_a_full_buffer_does_not_cut_the_backoff_short() -> None:
    attempts: list[int] = []

    def refuse(rows: Rows, history: list[Any]) -> None:
        attempts.append(len(rows))
        raise OperationalError("connection refused")

    spilled: list[str] = []
    buffer = WriteBuffer(
        refuse, 0.001, max_buffered=2, spill=lambda r, h: spilled.extend(x["task_id"] for x in r)
    )
    done = threading.Event()
    for i in range(200):
        buffer.add(_row(f"f{i}", "PENDING"))
        done.wait(0.002)
    # Backing off (0.05, 0.15, 0.36 s...) allows a handful of attempts in these 0.4 s
    # or more; a full buffer used to wake the thread at every add, 200 attempts.
    assert 1 <= len(attempts) <= 10
    buffer.close(timeout=1)
    # Full after a failed attempt, then at close: every task spooled once, none dropped.
    assert sorted(spilled) == sorted(f"f{i}" for i in range(200))


def test_close_waits_for_a_spool_of_a_full_buffer_under_way() -> None:
    entered, release = threading.Event(), threading.Event()
    spilled: list[str] = []

    def refuse(rows: Rows, history: list[Any]) -> None:
        raise OperationalError("connection refused")

    def slow_spill(rows: Rows, history: list[Any]) -> None:
        entered.set()
        release.wait(10)
        spilled.extend(r["task_id"] for r in rows)

    buffer = WriteBuffer(refuse, 0.001, max_buffered=1, spill=slow_spill, close_timeout=5)
    buffer.add(_row("s1", "PENDING"))
    assert entered.wait(5)
    # The rows are out of the buffer but not on disk yet: exiting now would lose them.
    closer = threading.Thread(target=buffer.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive(), "close() returned while the spool was still being written"
    release.set()
    closer.join(10)
    assert not closer.is_alive() and spilled == ["s1"]


def test_the_system_check_warns_when_the_spool_cannot_be_written(
    settings: Any, tmp_path: Path
) -> None:
    # A path under a regular file cannot be created, even by root (who passes every
    # permission check, so a read-only mode would not show it).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.TASKTRAIL = {**settings.TASKTRAIL, "SPOOL_DIR": str(blocker / "spool")}
    warned = [m for m in checks.check_settings() if m.id == "tasktrail.W003"]
    assert len(warned) == 1 and str(blocker / "spool") in warned[0].msg


def test_the_system_check_is_quiet_for_a_writable_spool(spool_dir: Path) -> None:
    assert [m.id for m in checks.check_settings() if m.id == "tasktrail.W003"] == []
    assert list(spool_dir.iterdir()) == []  # the probe file is gone
