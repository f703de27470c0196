"""What the database can store, made so before an event is buffered; and what a flush
does when the database refuses a row anyway.

Why both: a flush writes every buffered task in one statement, so one value the
database refuses would fail the whole flush, and a flush that fails is retried, so one
bad value would stop the recording of every task behind it. First line: every event is
made storable when it is built (:func:`row`), on SQLite and PostgreSQL alike so a task
reads the same on both:

- text: a NUL (which PostgreSQL's text and JSON cannot hold) and a lone surrogate (not
  UTF-8) become U+FFFD; a value longer than its column is cut, with ``…`` at the end;
  an id that does not fit (parent, root, group) is left out rather than cut into
  another task's id;
- JSON text: the same, for ``\\u0000`` and lone surrogate escapes;
- numbers: integers outside their column's range, and floats that are not finite, are
  left out (``None``); an owner that is not a valid key of the user model is too.

Second line (:func:`isolate`): a flush the database refuses is split in halves until the
offending rows are found; every other row is written, and each offending task is
recorded with its state and a storage error instead of its payload.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError
from django.db.backends.base.operations import BaseDatabaseOperations

from .. import ids
from .history import HistoryEntry
from .schema import JSON, TEXT, Row, blank

logger = logging.getLogger("tasktrail.store")

#: Written as the error of a task whose event the database refused.
STORAGE_ERROR = "tasktrail.StorageError"
_CUT = "…"
#: Ids cut short would name another task: left out instead.
_IDS = frozenset({"parent_id", "root_id", "group_id"})
_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
# An escape of NUL or of a surrogate in JSON text, after an even number of backslashes
# (an odd number escapes the backslash itself: that is text, not an escape).
_JSON_ESCAPE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u(0000|d[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|d[89a-f][0-9a-f]{2})"
)


class Unstorable(ValueError):
    """An event the database cannot hold at all: its task id does not fit."""


@functools.cache
def _limits() -> tuple[dict[str, int], dict[str, tuple[int, int]], Any]:
    """Column lengths and integer ranges, read from the model: the table's own limits."""
    from ..models import Task

    lengths: dict[str, int] = {}
    ranges: dict[str, tuple[int, int]] = {}
    for field in Task._meta.concrete_fields:
        kind, column = field.get_internal_type(), str(field.column)
        if kind == "CharField" and field.max_length:
            lengths[column] = field.max_length
        elif kind in BaseDatabaseOperations.integer_field_ranges:
            ranges[column] = BaseDatabaseOperations.integer_field_ranges[kind]
    owner = Task._meta.get_field("owner").target_field
    bounds = BaseDatabaseOperations.integer_field_ranges.get(owner.get_internal_type())
    if bounds is not None:
        ranges["owner_id"] = bounds
    return lengths, ranges, owner


def text(value: str) -> str:
    """``value`` without what PostgreSQL's text cannot hold."""
    if value.isascii():
        return value.replace("\x00", _REPLACEMENT) if "\x00" in value else value
    value = value.replace("\x00", _REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub(_REPLACEMENT, value)
    return value


def _escape(match: re.Match[str]) -> str:
    code = match.group(2)
    return match.group(0) if "\\u" in code else match.group(1) + "\\ufffd"


def json_text(value: str) -> str:
    """JSON text without escapes of NUL or of lone surrogates (jsonb refuses both)."""
    if "\\u0000" not in value and "\\ud" not in value:
        return value
    return _JSON_ESCAPE.sub(_escape, text(value))


def _fit(column: str, value: str, limit: int | None) -> str:
    value = text(value)
    if limit is None or len(value) <= limit:
        return value
    if column in _IDS:
        logger.warning("tasktrail: %s of %d characters does not fit; left out", column, len(value))
        return ""
    return value[: limit - len(_CUT)] + _CUT


def _integer(value: Any, bounds: tuple[int, int]) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    return value if bounds[0] <= value <= bounds[1] else None


def _owner(value: Any, field: Any, bounds: tuple[int, int] | None) -> Any:
    if value is None:
        return None
    try:
        value = field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return None
    if isinstance(value, str):
        return text(value)
    return _integer(value, bounds) if bounds is not None else value


def row(event: Row) -> Row:
    """``event`` with every value made storable (in place); :class:`Unstorable` if its
    task id cannot be."""
    if not ids.valid(event["task_id"]):
        raise Unstorable(f"task id {str(event['task_id'])[:80]!r} cannot be stored")
    lengths, ranges, owner = _limits()
    for column in TEXT:
        value = event[column]
        if value:
            event[column] = _fit(column, value, lengths.get(column))
    for column in JSON:
        value = event[column]
        if value:
            event[column] = json_text(value)
    for column in ("attempt", "max_retries", "worker_pid"):
        event[column] = _integer(event[column], ranges[column])
    if event["attempt"] is None:
        event["attempt"] = 0
    for column in ("progress_current", "progress_total"):
        value = event[column]
        if isinstance(value, float) and not math.isfinite(value):
            event[column] = None
    event["owner_id"] = _owner(event["owner_id"], owner, ranges.get("owner_id"))
    return event


def detail(value: Any) -> Any:
    """A history entry's detail (small dicts of text) made storable."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(str(k)): detail(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [detail(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- the second line: a flush the database refuses ----------------------------------

Write = Callable[[list[Row], list[HistoryEntry]], None]
#: What a database says about a value it cannot store (as opposed to being unreachable).
REFUSED = (DataError, IntegrityError, ValueError, TypeError, OverflowError)


def isolate(write: Write, rows: list[Row], entries: list[HistoryEntry]) -> None:
    """``write(rows, entries)``; if the database refuses a value, write every other row
    and record each offending task with a storage error instead."""
    try:
        write(rows, entries)
    except REFUSED as exc:
        if len(rows) == 1:
            _replace(write, rows[0], exc)
            return
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            ids = {r["task_id"] for r in part}
            isolate(write, part, [e for e in entries if e.task_id in ids])


def _replace(write: Write, refused: Row, exc: BaseException) -> None:
    reason = text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    logger.error(
        "tasktrail: the database refused the %s event of task %s (%s: %s); recorded it "
        "with a storage error instead of its values",
        refused["state"],
        refused["task_id"],
        type(exc).__name__,
        reason,
    )
    stand_in = {c: refused[c] if c in _KEPT else blank(c) for c in refused}
    stand_in.update(
        error_type=STORAGE_ERROR,
        error_message=(
            f"tasktrail could not store this task's {refused['state']} event: the database "
            f"refused a value ({type(exc).__name__}: {reason[:500]})"
        ),
    )
    entry = HistoryEntry(
        refused["task_id"],
        refused["state"],
        refused["attempt"] or 0,
        refused["updated_at"],
        "",
        {"error_type": STORAGE_ERROR, "error_message": stand_in["error_message"]},
    )
    try:
        write([stand_in], [entry])
    except REFUSED:
        logger.exception("tasktrail: task %s cannot be recorded at all", refused["task_id"])


#: What a stand-in row keeps of the refused one: the facts that say what happened when.
_KEPT = frozenset(
    {
        "task_id",
        "state",
        "rank",
        "attempt",
        "updated_at",
        "sent_at",
        "received_at",
        "started_at",
        "finished_at",
        "next_retry_at",
        "expires_at",
    }
)
