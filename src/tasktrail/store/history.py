"""The history rule: which transitions a task's history lists, in one place.

A history entry is one ``(state, attempt)`` a task went through, with when and where.
The rule, applied by every step that handles entries:

1. **Listed once.** A task's history holds each ``(state, attempt)`` at most once. A
   repeat in one process (a flood of ``PROGRESS``, the retry signal after the retry
   result) never leaves the buffer (:class:`Repeats`); a repeat from elsewhere (a task
   run again after it succeeded, a replayed message) is refused when written, by the
   SQL in :mod:`tasktrail.store.sql` on PostgreSQL and by :func:`new_entries` on SQLite.
2. **Every report that happened is listed**, even one the task row refused because a
   later one overtook it (a flush delayed by an outage lands after the next attempt
   began): the row keeps the newest state, the history keeps the past.
3. **An outcome decided away from the task** (a revoke sent before the task ran, attempt
   0) is listed under the attempt the row holds when it is written.
4. **Oldest first**: read by the time each transition happened, not by when it was
   written.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from .. import jsoncodec


class HistoryEntry(NamedTuple):
    task_id: str
    state: str
    attempt: int
    at: datetime
    worker: str
    #: What the row cannot hold for this transition: the attempt's error, the pid, ...
    detail: dict[str, Any] | None


#: The history table's columns the write path fills, in the order of :class:`HistoryEntry`.
COLUMNS = HistoryEntry._fields
#: How history is read: by when it happened, then by when it was written.
ORDER = ("at", "id")

_REPEATS_KEPT = 10_000


class Repeats:
    """The last ``(state, attempt)`` buffered per task, so a repeat adds no entry."""

    def __init__(self) -> None:
        self._last: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def is_repeat(self, task_id: str, state: str, attempt: int) -> bool:
        key = (state, attempt)
        if self._last.get(task_id) == key:
            return True
        self._last[task_id] = key
        self._last.move_to_end(task_id)
        if len(self._last) > _REPEATS_KEPT:
            self._last.popitem(last=False)
        return False


def resolve_attempts(
    entries: Iterable[HistoryEntry], attempts: Mapping[str, int], final: bool = False
) -> list[HistoryEntry]:
    """Rule 3: an entry of attempt 0 takes the attempt its task's row holds, if known
    (``final``: the row as stored, where 0 means 1); and rule 1 within one flush (the
    first of two entries for one ``(state, attempt)`` wins)."""
    seen: set[tuple[str, str, int]] = set()
    out = []
    for entry in entries:
        if entry.attempt == 0 and (attempts.get(entry.task_id) or final):
            entry = entry._replace(attempt=attempts.get(entry.task_id) or 1)
        key = (entry.task_id, entry.state, entry.attempt)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def new_entries(
    entries: Iterable[HistoryEntry], listed: set[tuple[str, str, int]]
) -> list[HistoryEntry]:
    """Rule 1 against the stored history: ``listed`` holds its ``(task_id, state, attempt)``."""
    return [e for e in entries if (e.task_id, e.state, e.attempt) not in listed]


def values(entry: HistoryEntry) -> tuple[Any, ...]:
    """The entry as column values, its detail encoded as JSON."""
    detail = None if entry.detail is None else jsoncodec.dumps(entry.detail)
    return (*entry[:-1], detail)
