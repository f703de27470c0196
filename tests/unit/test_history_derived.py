"""Rule 5 of the history (tasktrail.store.history): the happy path's entries, derived from
the task row instead of stored, read exactly as when every entry was stored, and the
metrics count exactly as then. SQLite, and PostgreSQL in the suite's PostgreSQL pass.

Every sequence runs through the real buffer and write path three times, under its own
task id: deriving at every flush, deriving at some flushes only (a process of the
previous release, which stores everything, writing in between), and storing every
entry (today's reference). Histories, attempts and counters must be equal.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tasktrail
from tasktrail import states, store
from tasktrail.models import Metric, Task, Transition
from tasktrail.records import Transition as TransitionRecord
from tasktrail.store import write
from tasktrail.store.buffer import WriteBuffer

from .test_store_guard import random_event

pytestmark = pytest.mark.django_db(transaction=True)

# The module: the package's ``history`` is the read function.
history = importlib.import_module("tasktrail.store.history")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DONE = (states.SUCCESS, states.FAILURE, states.REVOKED, states.LOST)


@dataclass(frozen=True)
class Step:
    """One event (``state``, ``attempt``, its columns and history detail), or a flush."""

    state: str = ""
    attempt: int = 0
    second: float = 0.0
    values: tuple[tuple[str, Any], ...] = ()
    detail: dict[str, Any] | None = None

    @property
    def flush(self) -> bool:
        return not self.state


FLUSH = Step()


def as_recorded(state: str, second: float, values: dict[str, Any]) -> dict[str, Any]:
    """The columns the recorder stamps with an event's moment (tasktrail.celery.recorder)."""
    at = T0 + timedelta(seconds=second)
    if state == states.PENDING:
        values["sent_at"] = at
    elif state == states.STARTED:
        values["started_at"] = at
    elif state in DONE:
        values["finished_at"] = at
    return values


def started_detail(rng: random.Random, values: dict[str, Any]) -> dict[str, Any] | None:
    pid = values.get("worker_pid")
    detail: dict[str, Any] = {} if pid is None else {"pid": pid}
    if rng.random() < 0.15:
        detail["due"] = (T0 + timedelta(seconds=1)).isoformat()
    return detail or None


def guard_sequence(rng: random.Random, task_id: str) -> list[Step]:
    """The guard test's random events (tests/unit/test_store_guard.py), with the moments
    and pids the recorder stamps on most of them, flushed after each or now and then."""
    steps: list[Step] = []
    for step in range(rng.randint(1, 8)):
        event = random_event(rng, task_id, step)
        values = {c: v for c, v in event.items() if v not in (None, "")}
        for column in ("task_id", "state", "rank", "attempt", "updated_at"):
            values.pop(column, None)
        state, attempt = event["state"], event["attempt"]
        if rng.random() < 0.8:
            as_recorded(state, step, values)
        if state == states.STARTED and rng.random() < 0.8:
            values["worker_pid"] = rng.choice([101, 102])
        detail = started_detail(rng, values) if state == states.STARTED else None
        if state == states.PENDING and rng.random() < 0.8:
            attempt = 1
        steps.append(Step(state, attempt, step, tuple(values.items()), detail))
        if rng.random() < 0.6:
            steps.append(FLUSH)
    return [*steps, FLUSH]


def flow_sequence(rng: random.Random) -> list[Step]:
    """A task as Celery reports it, mostly the happy path: sent, perhaps received and
    retried, started and finished, with the producer's write late, messages replayed,
    progress stamped at the outcome's moment, and flushes anywhere."""
    worker, pid = rng.choice(["w1", "w2", "w2", ""]), rng.choice([101, 102, 102, None])
    events: list[tuple[str, int, dict[str, Any], dict[str, Any] | None]] = []
    sent = ("PENDING", 1, {"name": "app.add"}, rng.choice([None] * 6 + [{"name": "runner"}]))
    attempts = rng.choice([1, 1, 1, 2, 3])
    for attempt in range(1, attempts + 1):
        if rng.random() < 0.2:
            events.append((states.RECEIVED, attempt, {"worker": worker}, None))
        started = {"worker": worker, "worker_pid": pid}
        events.append((states.STARTED, attempt, started, {"pid": pid} if pid else None))
        if rng.random() < 0.2:
            events.append((states.PROGRESS, attempt, {"progress_current": 1.0}, None))
        if attempt < attempts:
            error = {"error_type": "OSError", "error_message": "m", "traceback": "tb"}
            events.append((states.RETRY, attempt, {"worker": worker, **error}, error))
        else:
            end = rng.choice([states.SUCCESS] * 6 + [states.FAILURE, states.REVOKED])
            detail = {"error_type": "E"} if end != states.SUCCESS else None
            events.append((end, attempt if rng.random() < 0.9 else 0, {"worker": worker}, detail))
    if rng.random() < 0.15:
        # The same message run again after it finished (replayed, delivered twice).
        events += events[-2:]
    # The producer's PENDING lands anywhere: usually first, sometimes after the worker's.
    events.insert(0 if rng.random() < 0.7 else rng.randint(1, len(events)), sent)
    steps: list[Step] = []
    second = 0.0
    for state, attempt, values, detail in events:
        flushed = bool(steps) and steps[-1].flush
        # A moment shared with the previous event of the same flush: progress drained
        # at the outcome's moment (tasktrail.celery.progress), or a coarse clock.
        if flushed or not steps or rng.random() > 0.15:
            second += rng.choice([0.000001, 0.001, 1.0])
        steps.append(
            Step(
                state,
                attempt,
                second,
                tuple(as_recorded(state, second, dict(values)).items()),
                detail,
            )
        )
        if rng.random() < 0.4:
            steps.append(FLUSH)
    return [*steps, FLUSH]


def run(buffer: WriteBuffer, task_id: str, steps: Sequence[Step], deriving: Iterator[bool]) -> None:
    """``steps`` through the real buffer (flushed only where they say) and the store's
    write path, deriving at each flush as ``deriving`` says."""
    try:
        for step in steps:
            if step.flush:
                history._deriving = next(deriving)
                buffer.flush()
                continue
            at = T0 + timedelta(seconds=step.second)
            buffer.add(
                store.event(task_id, step.state, step.attempt, at, **dict(step.values)), step.detail
            )
    finally:
        history._deriving = True


def own_buffer() -> WriteBuffer:
    """A write buffer whose thread never flushes on its own (within an hour): the test
    says where each flush falls, as the real ones fall anywhere."""
    return WriteBuffer(write.write, interval=3600.0, max_buffered=10_000)


@dataclass(frozen=True)
class Read:
    history: list[TransitionRecord]
    attempts: list[Any]
    row: dict[str, Any]
    stored: int


def read(task_id: str) -> Read:
    row = Task.objects.filter(task_id=task_id).values().first() or {}
    row = {c: v for c, v in row.items() if c not in ("task_id", "derived")}
    stored = Transition.objects.filter(task_id=task_id).count()
    return Read(tasktrail.history(task_id), tasktrail.attempts(task_id), row, stored)


def counters() -> dict[tuple[str, str, str], tuple[int, float]]:
    return {(m.name, m.kind, m.label): (m.count, round(m.total, 6)) for m in Metric.objects.all()}


def sequences() -> list[list[Step]]:
    rng = random.Random(20261202)
    found = [guard_sequence(rng, f"guard-{n}") for n in range(60)]
    return found + [flow_sequence(rng) for _ in range(140)]


MODES = {
    "derived": lambda rng: iter(lambda: True, None),
    "mixed": lambda rng: iter(lambda: rng.random() < 0.6, None),
    "stored": lambda rng: iter(lambda: False, None),
}


def test_derived_history_reads_as_stored_history() -> None:
    plan = sequences()
    reads: dict[str, list[Read]] = {}
    counted: dict[str, dict[tuple[str, str, str], tuple[int, float]]] = {}
    for mode, deriving in MODES.items():
        Metric.objects.all().delete()
        rng, buffer = random.Random(7), own_buffer()
        reads[mode] = []
        for n, steps in enumerate(plan):
            task_id = f"{mode}-{n}"
            run(buffer, task_id, steps, deriving(rng))
            reads[mode].append(read(task_id))
        buffer.close()
        counted[mode] = counters()
    for mode in ("derived", "mixed"):
        for n, (got, want) in enumerate(zip(reads[mode], reads["stored"], strict=True)):
            assert got.history == want.history, (mode, n, plan[n])
            assert got.attempts == want.attempts, (mode, n)
            assert got.row == want.row, (mode, n)
        assert counted[mode] == counted["stored"], mode
    # Not a test that cannot fail: many entries were derived (the guard's sequences
    # are mostly chaos, which is stored), fewer with derivation at some flushes only.
    stored = sum(r.stored for r in reads["stored"])
    derived = sum(r.stored for r in reads["derived"])
    mixed = sum(r.stored for r in reads["mixed"])
    assert stored > 800 and stored - derived > 200 and derived < mixed < stored, (
        stored,
        derived,
        mixed,
    )


def happy(task_id: str, buffer: WriteBuffer, second: int = 0) -> None:
    """PENDING from the producer (a flush of its own), STARTED and SUCCESS from the worker."""
    at = [T0 + timedelta(seconds=second + s) for s in range(3)]
    buffer.add(store.event(task_id, "PENDING", 1, at[0], name="app.add", sent_at=at[0]))
    buffer.flush()
    buffer.add(
        store.event(task_id, "STARTED", 1, at[1], worker="w1", worker_pid=7, started_at=at[1]),
        {"pid": 7},
    )
    buffer.add(store.event(task_id, "SUCCESS", 1, at[2], worker="w1", finished_at=at[2]))
    buffer.flush()


def test_a_task_sent_started_and_succeeded_stores_no_history_row() -> None:
    buffer = own_buffer()
    happy("happy-1", buffer)
    buffer.close()
    assert Transition.objects.filter(task_id="happy-1").count() == 0
    assert Task.objects.get(task_id="happy-1").derived == 7
    assert [
        (t.state, t.attempt, t.at, t.worker, t.detail) for t in tasktrail.history("happy-1")
    ] == [
        ("PENDING", 1, T0, "", {}),
        ("STARTED", 1, T0 + timedelta(seconds=1), "w1", {"pid": 7}),
        ("SUCCESS", 1, T0 + timedelta(seconds=2), "w1", {}),
    ]
    (attempt,) = tasktrail.attempts("happy-1")
    assert (attempt.number, attempt.state, attempt.worker, attempt.worker_pid) == (
        1,
        "SUCCESS",
        "w1",
        7,
    )


def test_a_derived_entry_reported_again_is_not_listed_twice() -> None:
    buffer = own_buffer()
    happy("happy-2", buffer)
    # The same message run again, and sent again: the row stands for all three already.
    happy("happy-2", buffer, second=10)
    buffer.close()
    assert Transition.objects.filter(task_id="happy-2").count() == 0
    assert [t.at.second for t in tasktrail.history("happy-2")] == [0, 1, 2]


def test_rows_written_before_derivation_read_as_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row of the previous release has no bits: its history is what is stored."""
    monkeypatch.setattr(history, "_deriving", False)
    buffer = own_buffer()
    happy("old-1", buffer)
    monkeypatch.setattr(history, "_deriving", True)
    # A later report of this release (a replay) finds the entries stored: listed once.
    happy("old-1", buffer, second=10)
    buffer.close()
    assert Task.objects.get(task_id="old-1").derived == 0
    assert Transition.objects.filter(task_id="old-1").count() == 3
    assert [t.at.second for t in tasktrail.history("old-1")] == [0, 1, 2]


def test_progress_stamped_at_the_outcome_lists_before_it() -> None:
    """tasktrail.celery.progress stamps progress still coalescing with the outcome's
    moment: one moment, progress first, whether the outcome is derived or stored."""
    buffer = own_buffer()
    end = T0 + timedelta(seconds=2)
    buffer.add(
        store.event("tie-1", "STARTED", 1, T0, worker="w1", worker_pid=7, started_at=T0), {"pid": 7}
    )
    buffer.add(store.event("tie-1", "PROGRESS", 1, end, progress_current=1.0))
    buffer.add(store.event("tie-1", "SUCCESS", 1, end, worker="w1", finished_at=end))
    buffer.flush()
    buffer.close()
    assert [t.state for t in tasktrail.history("tie-1")] == ["STARTED", "PROGRESS", "SUCCESS"]
    assert Task.objects.get(task_id="tie-1").derived == history.STARTED_BIT | history.SUCCESS_BIT


def test_a_moment_that_would_read_in_another_order_is_stored() -> None:
    """A STARTED followed within its microsecond by progress: derived, it would sort
    after the stored progress, so neither is derived at that moment."""
    buffer = own_buffer()
    end = T0 + timedelta(seconds=2)
    buffer.add(
        store.event("tie-2", "STARTED", 1, T0, worker="w1", worker_pid=7, started_at=T0), {"pid": 7}
    )
    buffer.add(store.event("tie-2", "PROGRESS", 1, T0, progress_current=1.0))
    buffer.add(store.event("tie-2", "SUCCESS", 1, end, worker="w1", finished_at=end))
    buffer.flush()
    buffer.close()
    assert [t.state for t in tasktrail.history("tie-2")] == ["STARTED", "PROGRESS", "SUCCESS"]
    assert Task.objects.get(task_id="tie-2").derived == history.SUCCESS_BIT


def test_listed_prefers_the_stored_entry_and_orders_equal_moments() -> None:
    def entry(state: str, second: int, worker: str = "") -> history.HistoryEntry:
        return history.HistoryEntry("t", state, 1, T0 + timedelta(seconds=second), worker, None)

    stored = [entry("STARTED", 1, "stored"), entry("PROGRESS", 2)]
    derived = [entry("PENDING", 1), entry("STARTED", 1, "derived"), entry("SUCCESS", 2)]
    assert history.listed(stored, derived) == [
        entry("PENDING", 1),
        entry("STARTED", 1, "stored"),
        entry("PROGRESS", 2),
        entry("SUCCESS", 2),
    ]
