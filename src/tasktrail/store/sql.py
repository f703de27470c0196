"""SQL for the write path: a guarded multi-row upsert that enforces the state machine.

Works on PostgreSQL and SQLite (≥ 3.35, for RETURNING) alike; both evaluate every
``SET`` expression against the row as it was, which the guard relies on.
"""

from __future__ import annotations

import functools

from .. import states
from .schema import COLUMNS, CORE, KEEP, META, RESET, TEXT

TASK_TABLE = "tasktrail_task"
HISTORY_TABLE = "tasktrail_transition"
HISTORY_COLUMNS = ("task_id", "state", "attempt", "at", "worker", "detail")


def _order(alias: str) -> str:
    return f"({alias}.attempt * {states.ATTEMPT_WEIGHT} + {alias}.rank)"


# Mirrors states.accepts(); tests/unit/test_store_guard.py checks they agree.
ACCEPTS = (
    f"(CASE WHEN t.rank = {states.RANK_LOST} THEN excluded.rank > {states.RANK_PENDING}"
    f" WHEN t.rank = {states.RANK_DONE} THEN 1 = 0"
    f" WHEN excluded.rank >= {states.RANK_LOST} THEN 1 = 1"
    f" WHEN {_order('excluded')} <> {_order('t')} THEN {_order('excluded')} > {_order('t')}"
    f" ELSE (excluded.state = t.state OR excluded.rank = {states.RANK_CUSTOM}) END)"
)


def _present(column: str) -> str:
    if column == "attempt":
        return "excluded.attempt > 0"
    return f"excluded.{column} <> ''" if column in TEXT else f"excluded.{column} IS NOT NULL"


def _assignment(column: str) -> str:
    if column in META:
        if column in TEXT:
            return f"CASE WHEN t.{column} = '' THEN excluded.{column} ELSE t.{column} END"
        return f"COALESCE(t.{column}, excluded.{column})"
    if column in CORE:
        condition = ACCEPTS
    elif column in KEEP:
        condition = f"{ACCEPTS} AND {_present(column)}"
    else:
        condition = f"{ACCEPTS} AND (excluded.state <> t.state OR {_present(column)})"
    return f"CASE WHEN {condition} THEN excluded.{column} ELSE t.{column} END"


@functools.cache
def upsert(rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    updates = ", ".join(f"{c} = {_assignment(c)}" for c in (*CORE, *META, *KEEP, *RESET))
    return (
        f"INSERT INTO {TASK_TABLE} AS t ({', '.join(COLUMNS)}) "
        f"VALUES {', '.join([placeholders] * rows)} "
        f"ON CONFLICT (task_id) DO UPDATE SET {updates} "
        "RETURNING task_id, state, attempt"
    )


@functools.cache
def insert_history(rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * len(HISTORY_COLUMNS)) + ")"
    return (
        f"INSERT INTO {HISTORY_TABLE} ({', '.join(HISTORY_COLUMNS)}) "
        f"VALUES {', '.join([placeholders] * rows)}"
    )
