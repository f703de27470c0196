"""The task state machine: states, phases and which transitions are accepted.

Pure code, no Django, no Celery. The store enforces the same rule in SQL (see
``tasktrail.store.sql``), built from the constants defined here, and a test checks
that the two agree.

Ordering: every event carries a state and the attempt it belongs to (1 for the first
run, 2 after one retry, ...; 0 when the reporter does not know). An event is accepted
when it moves the task *forward*: a higher ``(attempt, rank)``, or any outcome while
the task is not done. Done states are final, except ``LOST``, which any later real
report replaces. Custom running states (``PROGRESS`` and any name Celery users
invent) share one rank, so a task can move freely between them while it runs.
"""

from __future__ import annotations

import enum
import re
from typing import Final

PENDING: Final = "PENDING"
RECEIVED: Final = "RECEIVED"
STARTED: Final = "STARTED"
PROGRESS: Final = "PROGRESS"
RETRY: Final = "RETRY"
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
REVOKED: Final = "REVOKED"
LOST: Final = "LOST"


class Phase(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


# Ranks order events within one attempt. The gaps leave room; the values are
# written into SQL, so changing them needs no migration but must stay ordered.
RANK_PENDING: Final = 0
RANK_RECEIVED: Final = 10
RANK_STARTED: Final = 20
RANK_CUSTOM: Final = 30
RANK_RETRY: Final = 40
RANK_LOST: Final = 90
RANK_DONE: Final = 100

# Attempts are weighted so that any event of attempt n+1 sorts after every
# event of attempt n.
ATTEMPT_WEIGHT: Final = 1000

_RANKS: Final[dict[str, int]] = {
    PENDING: RANK_PENDING,
    RECEIVED: RANK_RECEIVED,
    STARTED: RANK_STARTED,
    RETRY: RANK_RETRY,
    LOST: RANK_LOST,
    SUCCESS: RANK_DONE,
    FAILURE: RANK_DONE,
    REVOKED: RANK_DONE,
}

BUILTIN_STATES: Final = frozenset(_RANKS)
READY_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED, LOST})
EXCEPTION_STATES: Final = frozenset({FAILURE, RETRY, REVOKED, LOST})
#: The states an operator filters by (custom ones are typed in).
LISTED_STATES: Final = tuple(sorted(BUILTIN_STATES | {PROGRESS}))
#: Done without a result: what an operator looks for, so the task list indexes them.
UNSUCCESSFUL: Final = (FAILURE, REVOKED, LOST)

# Custom state names follow Celery's habit (upper-case words); the limit keeps
# them readable and fits the column.
_CUSTOM_STATE = re.compile(r"[A-Z][A-Z0-9_]{0,49}")


class InvalidState(ValueError):
    """A state name that is neither built in nor a well-formed custom state."""


def validate(state: object) -> str:
    """Return ``state`` if tasktrail can record it, else raise :class:`InvalidState`."""
    if not isinstance(state, str):
        raise InvalidState(f"task state must be a string, got {type(state).__name__}")
    # fullmatch: "$" would also match before a final newline ("A" * 50 + "\n").
    if state in _RANKS or _CUSTOM_STATE.fullmatch(state):
        return state
    raise InvalidState(
        f"invalid task state {state[:60]!r}: use a built-in state or an upper-case name "
        "of at most 50 letters, digits and underscores, such as 'PROGRESS'"
    )


def rank(state: str) -> int:
    """The rank of ``state`` within an attempt; every custom state is a running state."""
    return _RANKS.get(state, RANK_CUSTOM)


def phase(state: str) -> Phase:
    r = rank(state)
    if r <= RANK_RECEIVED or r == RANK_RETRY:
        return Phase.WAITING
    if r >= RANK_LOST:
        return Phase.DONE
    return Phase.RUNNING


def is_done(state: str) -> bool:
    return rank(state) >= RANK_LOST


def order(state: str, attempt: int) -> int:
    return attempt * ATTEMPT_WEIGHT + rank(state)


def accepts(current: str, current_attempt: int, new: str, new_attempt: int) -> bool:
    """Whether an event ``(new, new_attempt)`` may replace ``(current, current_attempt)``.

    An accepted event that leaves the state unchanged (a repeated ``PROGRESS``, the
    retry signal after the retry result) merges its fields into the record.
    """
    current_rank, new_rank = rank(current), rank(new)
    if current_rank == RANK_LOST:
        return new_rank > RANK_PENDING
    if current_rank == RANK_DONE:
        return False
    if new_rank >= RANK_LOST:
        # An outcome ends the task whichever attempt reported it (a revoke sent
        # from outside does not know the attempt).
        return True
    current_order, new_order = order(current, current_attempt), order(new, new_attempt)
    if new_order != current_order:
        return new_order > current_order
    return new == current or new_rank == RANK_CUSTOM


def attempts_left(attempt: int, max_retries: int | None) -> int | None:
    """Retries still allowed after ``attempt`` (``None`` when unlimited or unknown)."""
    if max_retries is None:
        return None
    return max(0, max_retries + 1 - attempt)


def celery_state(state: str, ignore_result: bool = False) -> str:
    """The state Celery's API (``AsyncResult``, ``get_task_meta``) reports for ``state``.

    Celery's waiting code (``get()``, ``join()``, chords) and its users' ``if
    result.status == "PENDING"`` know only Celery's states, so tasktrail's own read as
    Celery's: ``RECEIVED`` (held by a worker, e.g. for its countdown) is ``PENDING``;
    ``LOST`` is what a lost pool process is to Celery, a ``FAILURE`` (its result is the
    ``WorkerLostError``, so ``ready()`` and ``failed()`` are true and ``get()`` raises).
    A task whose result Celery ignores is ``PENDING`` to Celery, as Celery's own backends
    store nothing for it, except a custom state the task set itself (``update_state``
    stores it through the backend whatever ``ignore_result`` says).
    """
    if ignore_result:
        return state if rank(state) == RANK_CUSTOM else PENDING
    if state == RECEIVED:
        return PENDING
    if state == LOST:
        return FAILURE
    return state
