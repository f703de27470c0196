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
5. **Derived, not stored, on the happy path.** The task row already holds what the
   entries of a task that is sent, started and succeeds say (``sent_at``,
   ``started_at``, ``finished_at``, ``worker``, ``worker_pid``, ``attempt``), so a
   flush writes no history row for those it can derive (:data:`DERIVED`): it sets
   their bit in the row's ``derived`` column instead, and reads derive them back
   (:func:`implied`, :func:`listed`). A bit is set only when the entry is exactly what
   the row will read back as, for good:

   - ``PENDING`` of attempt 1, with no worker and no detail, at the row's ``sent_at``
     (which no later event changes: the first sending wins);
   - ``STARTED`` (detail: only the pid) and ``SUCCESS`` (no detail) of the attempt the
     row ends the flush in as ``SUCCESS``, by the row's worker: a ``SUCCESS`` row
     accepts no later event, so its times, worker and attempt stay.

   Everything else is stored as before: each failed attempt and its error, retries,
   ``RECEIVED``, progress and custom states, ``LOST``, revocations, a ``STARTED`` whose
   attempt had not succeeded by the end of its flush, a detail the row cannot hold (a
   retry's ``due``, a django.tasks sending). Rows written before this rule have no
   bits, and read exactly as stored. Rule 1 holds across both: an entry is refused if
   stored *or* derived already, and where both exist the stored one is listed.
   Rule 4 at equal moments (entries stamped the same microsecond): ids order stored
   entries; a derived ``PENDING`` sorts before them, a derived ``STARTED`` and
   ``SUCCESS`` after (:data:`TIER`), which is the order they were written in; a flush
   whose entries of one moment would read in another order derives none of them.
   Only entries of *different* flushes stamped the same microsecond by different
   processes could read in an order other than their writing.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from .. import jsoncodec, states


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


# -- rule 5: entries derived from the task row -------------------------------------

#: The task table's column holding rule 5's bits.
DERIVED_COLUMN: Final = "derived"
PENDING_BIT: Final = 1
STARTED_BIT: Final = 2
SUCCESS_BIT: Final = 4
#: Rule 5's entries: each state's bit, and the attempt it has (``None``: the row's).
DERIVED: Final[Mapping[str, tuple[int, int | None]]] = {
    states.PENDING: (PENDING_BIT, 1),
    states.STARTED: (STARTED_BIT, None),
    states.SUCCESS: (SUCCESS_BIT, None),
}
#: Bits valid only if the flush's event is accepted (they read the row's state-bound
#: columns); the others read ``sent_at``, which the first sending sets for good.
ON_ACCEPT: Final = STARTED_BIT | SUCCESS_BIT
#: Rule 4 at equal moments: where an entry sorts among those stamped the same moment.
STORED_TIER: Final = 1
TIER: Final[Mapping[str, int]] = {states.PENDING: 0, states.STARTED: 2, states.SUCCESS: 3}
#: What :func:`implied` reads of a task row.
ROW_FIELDS: Final = (
    "task_id",
    DERIVED_COLUMN,
    "sent_at",
    "attempt",
    "started_at",
    "finished_at",
    "worker",
    "worker_pid",
)

# Tests turn derivation off to store every entry, as releases before rule 5 did.
_deriving = True


def _implied(row: Mapping[str, Any], bits: int) -> list[tuple[int, HistoryEntry]]:
    task_id, attempt, worker = row["task_id"], row["attempt"], row["worker"]
    found: list[tuple[int, HistoryEntry]] = []
    if bits & PENDING_BIT and row["sent_at"] is not None:
        found.append(
            (PENDING_BIT, HistoryEntry(task_id, states.PENDING, 1, row["sent_at"], "", None))
        )
    if bits & STARTED_BIT and row["started_at"] is not None:
        pid = row["worker_pid"]
        detail = None if pid is None else {"pid": pid}
        entry = HistoryEntry(task_id, states.STARTED, attempt, row["started_at"], worker, detail)
        found.append((STARTED_BIT, entry))
    if bits & SUCCESS_BIT and row["finished_at"] is not None:
        entry = HistoryEntry(task_id, states.SUCCESS, attempt, row["finished_at"], worker, None)
        found.append((SUCCESS_BIT, entry))
    return found


def implied(row: Mapping[str, Any]) -> list[HistoryEntry]:
    """The entries a stored task row (:data:`ROW_FIELDS`) stands for, by its bits."""
    return [entry for _, entry in _implied(row, row[DERIVED_COLUMN])]


def covered(bits: int, row_attempt: int, state: str, attempt: int) -> bool:
    """Whether a row with ``bits`` (of attempt ``row_attempt``) lists ``(state, attempt)``."""
    found = DERIVED.get(state)
    return found is not None and (bits & found[0]) != 0 and attempt == (found[1] or row_attempt)


def derivable(row: Mapping[str, Any], entries: Sequence[HistoryEntry]) -> int:
    """The bits for those of one flush's ``entries`` of ``row``'s task that ``row`` (as
    the flush folded it) will stand for: each equal to what the row reads back as. The
    SQL sets them only where they hold of the row as stored (:data:`ON_ACCEPT`)."""
    if not _deriving:
        return 0
    possible = PENDING_BIT
    if row["state"] == states.SUCCESS and row["attempt"] > 0 and row["worker"]:
        # A worker and pid the event carries are the row's for good; missing ones
        # would leave an earlier event's in the row.
        possible |= SUCCESS_BIT | (STARTED_BIT if row["worker_pid"] is not None else 0)
    candidates = {(e.state, e.attempt): (bit, e) for bit, e in _implied(row, possible)}
    matched: dict[int, int] = {}
    for index, entry in enumerate(entries):
        found = candidates.get((entry.state, entry.attempt))
        if found is not None and found[1] == entry:
            matched[index] = found[0]
    if not matched:
        return 0
    for index in _unordered(entries, matched):
        matched.pop(index, None)
    bits = 0
    for bit in matched.values():
        bits |= bit
    return bits


def _unordered(entries: Sequence[HistoryEntry], matched: Mapping[int, int]) -> list[int]:
    """Rule 4: the derived entries of moments whose entries would read back in another
    order than this flush's (stored ones by id, that is in this order)."""
    moments: dict[datetime, list[int]] = defaultdict(list)
    for index, entry in enumerate(entries):
        moments[entry.at].append(index)
    out: list[int] = []
    for indices in moments.values():
        if len(indices) < 2:
            continue
        tiers = [TIER[entries[i].state] if i in matched else STORED_TIER for i in indices]
        if tiers != sorted(tiers):
            out += indices
    return out


def derive(rows: Iterable[Mapping[str, Any]], entries: Iterable[HistoryEntry]) -> dict[str, int]:
    """:func:`derivable` for a whole flush: the bits of each task that has any."""
    if not _deriving:
        return {}
    # Every entry of a task, not only those that may be derived: rule 4 compares them.
    by_task: dict[str, list[HistoryEntry]] = defaultdict(list)
    for entry in entries:
        by_task[entry.task_id].append(entry)
    found: dict[str, int] = {}
    for row in rows:
        task_entries = by_task.get(row["task_id"])
        if task_entries and (bits := derivable(row, task_entries)):
            found[row["task_id"]] = bits
    return found


def listed(stored: Sequence[HistoryEntry], derived: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """A task's history from its ``stored`` entries (oldest first, by :data:`ORDER`) and
    those its row stands for: rule 1 (the stored entry when both list one ``(state,
    attempt)``) and rule 4 (:data:`TIER` at equal moments)."""
    keys = {(e.state, e.attempt) for e in stored}
    extra = [e for e in derived if (e.state, e.attempt) not in keys]
    if not extra:
        return list(stored)
    keyed = [(e.at, STORED_TIER, i, e) for i, e in enumerate(stored)]
    keyed += [(e.at, TIER[e.state], 0, e) for e in extra]
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]
