"""Smoke test of bench.bulkload: 1,000 generated tasks land with the intended shape.

PostgreSQL only (the loader is PostgreSQL SQL): runs with ``TT_DB=postgres``.
"""

from __future__ import annotations

import os

import pytest

from bench import bulkload

pytestmark = [
    pytest.mark.skipif(os.environ.get("TT_DB") != "postgres", reason="needs TT_DB=postgres"),
    pytest.mark.django_db(transaction=True),
]


def _one(cursor: object, sql: str) -> int:
    cursor.execute(sql)  # type: ignore[attr-defined]
    return int(cursor.fetchone()[0])  # type: ignore[attr-defined]


def test_load_1000_tasks() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        before = bulkload._indexes(cursor, bulkload.TASK_TABLE)
        times = bulkload.load(cursor, bulkload.Spec(tasks=1000, history_every=1))
        counts = bulkload.counts(cursor)
        states = bulkload.state_counts(cursor)
        # The same indexes again (PostgreSQL may spell a rebuilt definition differently).
        again = bulkload._indexes(cursor, bulkload.TASK_TABLE)
        assert [drop for drop, _ in again] == [drop for drop, _ in before]
        wrong_rank = _one(
            cursor,
            "SELECT count(*) FROM tasktrail_task WHERE rank <> CASE state "
            + " ".join(f"WHEN '{s}' THEN {r}" for s, r in bulkload.RANKS.items())
            + " END",
        )
        unfinished_done = _one(
            cursor,
            "SELECT count(*) FROM tasktrail_task WHERE rank = 100 "
            "AND (finished_at IS NULL OR expires_at IS NULL OR updated_at <> finished_at)",
        )
        out_of_range = _one(
            cursor,
            "SELECT count(*) FROM tasktrail_task WHERE sent_at < now() - interval '31 days' "
            "OR sent_at > now() OR updated_at < sent_at",
        )
        names = _one(cursor, "SELECT count(DISTINCT name) FROM tasktrail_task")
        owners = _one(cursor, "SELECT count(*) FROM tasktrail_task WHERE owner_id IS NOT NULL")
        users = _one(cursor, "SELECT count(*) FROM auth_user")

    assert times["total"] > 0
    assert counts["tasktrail_task"] == 1000
    # PENDING, RECEIVED, STARTED and the outcome, less for tasks still in flight.
    assert 3.5 * 1000 < counts["tasktrail_transition"] < 4.5 * 1000
    assert set(states) <= set(bulkload.RANKS)
    assert states["SUCCESS"] > 850
    assert 10 <= states.get("FAILURE", 0) <= 100
    assert wrong_rank == unfinished_done == out_of_range == 0
    assert names >= 15
    assert 120 < owners < 280
    assert users >= bulkload.USERS
