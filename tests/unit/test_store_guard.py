"""The SQL guard and the in-memory fold must agree with each other, event by event.

Random event sequences go through the database one flush at a time, and through
``schema.fold`` in memory; the stored row must equal the folded one. Runs on
SQLite, and on PostgreSQL in the PostgreSQL pass of the suite.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasktrail import jsoncodec, store
from tasktrail.models import Task
from tasktrail.store.schema import COLUMNS, JSON, Row, fold

pytestmark = pytest.mark.django_db(transaction=True)

STATES = [
    "PENDING",
    "RECEIVED",
    "STARTED",
    "PROGRESS",
    "UPLOADING",
    "RETRY",
    "SUCCESS",
    "FAILURE",
    "REVOKED",
    "LOST",
]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def random_event(rng: random.Random, task_id: str, step: int) -> Row:
    state = rng.choice(STATES)
    values: dict[str, Any] = {}
    if rng.random() < 0.5:
        values["worker"] = rng.choice(["", "w1", "w2"])
    if rng.random() < 0.5:
        values["name"] = rng.choice(["", "a.task", "b.task"])
    if rng.random() < 0.5:
        values["result"] = rng.choice([None, jsoncodec.dumps({"n": step}), jsoncodec.dumps([1])])
    if rng.random() < 0.4:
        values["error_type"] = rng.choice(["", "ValueError"])
    if rng.random() < 0.4:
        values["next_retry_at"] = rng.choice([None, T0 + timedelta(seconds=step)])
    if rng.random() < 0.4:
        values["progress_current"] = rng.choice([None, float(step)])
    if rng.random() < 0.3:
        values["owner_id"] = rng.choice([None, 7])
    if rng.random() < 0.5:
        values["show_result"] = rng.choice(["", "yes", "no", "default"])
    return store.event(task_id, state, rng.randint(0, 3), T0 + timedelta(seconds=step), **values)


def stored(task_id: str) -> dict[str, Any]:
    return Task.objects.filter(task_id=task_id).values(*COLUMNS).get()


def comparable(row: Row) -> dict[str, Any]:
    return {
        c: (jsoncodec.loads(row[c]) if c in JSON and row[c] is not None else row[c])
        for c in COLUMNS
    }


def test_sql_guard_matches_the_pure_fold() -> None:
    rng = random.Random(20261125)
    for sequence in range(60):
        task_id = f"guard-{sequence}"
        expected: Row | None = None
        for step in range(rng.randint(1, 8)):
            event = random_event(rng, task_id, step)
            expected = event if expected is None else fold(expected, event)[0]
            store.record(event)
            store.flush()
            assert stored(task_id) == comparable(expected), (sequence, step)
