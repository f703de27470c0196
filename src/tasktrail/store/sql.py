"""SQL for the write path: a guarded multi-row upsert that enforces the state machine.

Works on PostgreSQL and SQLite (≥ 3.35, for RETURNING) alike; both evaluate every
``SET`` expression against the row as it was, which the guard relies on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from .. import states
from .history import COLUMNS as HISTORY_COLUMNS
from .rollup import COUNTED_SQL, RETURNED
from .schema import COLUMNS, CORE, KEEP, META, RESET, STRICT, STRICTEST, TEXT

TASK_TABLE = "tasktrail_task"
HISTORY_TABLE = "tasktrail_transition"
#: Known (task name, queue) pairs (:mod:`tasktrail.store.names`).
NAME_TABLE = "tasktrail_name"


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
    if column in STRICT:
        # Mirrors schema.fold(): the first value, unless a later one is the strictest.
        keep = f"t.{column} = '' OR excluded.{column} = '{STRICTEST[column]}'"
        return f"CASE WHEN {keep} THEN excluded.{column} ELSE t.{column} END"
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


_UPDATES = ", ".join(f"{c} = {_assignment(c)}" for c in (*CORE, *META, *STRICT, *KEEP, *RESET))
#: The row as the statement left it: the id, state and attempt (the history's attempt
#: 0 takes it), then what the metrics' counters read (:data:`rollup.RETURNED`).
_CONFLICT = (
    f"ON CONFLICT (task_id) DO UPDATE SET {_UPDATES} "
    f"RETURNING task_id, state, attempt, {', '.join(RETURNED)}"
)


@functools.cache
def upsert(rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO {TASK_TABLE} AS t ({', '.join(COLUMNS)}) "
        f"VALUES {', '.join([placeholders] * rows)} {_CONFLICT}"
    )


def _recordset(alias: str, columns: Sequence[str], types: Sequence[str]) -> tuple[str, str]:
    """Column definitions for ``json_to_recordset`` and the select list reading them.

    JSON columns travel as already-encoded text and are cast on the way in.
    """
    definitions = ", ".join(
        f"{c} text" if t == "jsonb" else f"{c} {t}" for c, t in zip(columns, types, strict=True)
    )
    select = ", ".join(
        f"{alias}.{c}::jsonb" if t == "jsonb" else f"{alias}.{c}"
        for c, t in zip(columns, types, strict=True)
    )
    return definitions, select


#: Keeps the history check a lookup per entry through the history's task index.
#: Without it the planner turns ``NOT EXISTS`` into a hash anti-join that reads the
#: whole history table on every flush: 11.7 ms per 200-entry flush at 15,600 entries
#: (a 5,000-task bench run), growing with the table, against 4 ms as lookups; the bench
#: saw PostgreSQL's CPU per task go from 0.58 to 2.0 ms (bench/README.md). ``OFFSET 0``
#: stops the subquery from being pulled up into a join, whatever the statistics say.
_PER_ENTRY = "OFFSET 0"


@functools.cache
def write_postgresql(task_types: tuple[str, ...], history_types: tuple[str, ...]) -> str:
    """One statement for a whole flush on PostgreSQL: upsert the tasks, append the
    history entries the task does not list yet (:mod:`tasktrail.store.history`), and add
    the outcomes and retries they record to the metrics' counters (:mod:`.rollup`).

    The rows travel as two JSON documents, so the statement has one shape whatever
    the batch size, is prepared once per connection, and the driver adapts two
    strings instead of a value per cell. All parts of one statement see the table as
    it was before it, so the history check reads the entries of earlier flushes.
    """
    task_defs, task_select = _recordset("r", COLUMNS, task_types)
    history_defs, _ = _recordset("h", HISTORY_COLUMNS, history_types)
    _, history_select = _recordset("h", HISTORY_COLUMNS, history_types)
    # An entry of attempt 0 (an outcome decided away from the task) takes the row's.
    attempt = "CASE WHEN h.attempt = 0 THEN GREATEST(up.attempt, 1) ELSE h.attempt END"
    history_select = history_select.replace("h.attempt", f"{attempt} AS attempt", 1)
    return (
        f"WITH up AS (INSERT INTO {TASK_TABLE} AS t ({', '.join(COLUMNS)}) "
        f"SELECT {task_select} FROM json_to_recordset(%s::json) AS r({task_defs}) "
        f"{_CONFLICT}), "
        f"hist AS (INSERT INTO {HISTORY_TABLE} ({', '.join(HISTORY_COLUMNS)}) "
        f"SELECT {history_select} "
        f"FROM ROWS FROM (json_to_recordset(%s::json) AS ({history_defs})) "
        f"WITH ORDINALITY AS h({', '.join(HISTORY_COLUMNS)}, n) "
        "JOIN up ON up.task_id = h.task_id "
        f"WHERE NOT EXISTS (SELECT 1 FROM {HISTORY_TABLE} x WHERE x.task_id = h.task_id "
        f"AND x.action = '' AND x.state = h.state AND x.attempt = {attempt} {_PER_ENTRY}) "
        "ORDER BY h.n "
        "RETURNING task_id, state, attempt), "
        f"{COUNTED_SQL}"
    )


@functools.cache
def listed_history(tasks: int) -> str:
    """The ``(task_id, state, attempt)`` the history lists for ``tasks`` ids."""
    return (
        f"SELECT task_id, state, attempt FROM {HISTORY_TABLE} "
        f"WHERE action = '' AND task_id IN ({', '.join(['%s'] * tasks)})"
    )


@functools.cache
def insert_history(rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * len(HISTORY_COLUMNS)) + ")"
    return (
        f"INSERT INTO {HISTORY_TABLE} ({', '.join(HISTORY_COLUMNS)}) "
        f"VALUES {', '.join([placeholders] * rows)}"
    )
