"""Frozen value objects handed to users; never ORM rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import states


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    current: float
    total: float | None
    message: str
    meta: dict[str, Any]

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))

    def as_json(self) -> dict[str, Any]:
        """For JSON answers: the fields, and ``percent``."""
        return {
            "current": self.current,
            "total": self.total,
            "percent": self.percent,
            "message": self.message,
            "meta": self.meta,
        }

    def __str__(self) -> str:
        """For people: ``3/4 (75%) row 3``."""
        done = f"{self.current:g}" + ("" if self.total is None else f"/{self.total:g}")
        percent = "" if self.percent is None else f" ({self.percent:.0f}%)"
        return f"{done}{percent} {self.message}".rstrip()


@dataclasses.dataclass(frozen=True, slots=True)
class TaskError:
    type: str
    message: str
    traceback: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    state: str
    attempt: int
    at: datetime
    worker: str
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    name: str
    queue: str
    state: str
    attempt: int
    max_retries: int | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    result: Any
    error: TaskError | None
    progress: Progress | None
    owner_id: Any
    parent_id: str
    root_id: str
    group_id: str
    worker: str
    worker_pid: int | None
    sent_at: datetime | None
    received_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    next_retry_at: datetime | None
    expires_at: datetime | None
    #: Ids of the tasks this one sent, as Celery stored them when it finished.
    children: tuple[str, ...] = ()
    #: The task's ``tasktrail_show_result`` as recorded when it was sent or started:
    #: one of :mod:`tasktrail.options`' ``SHOWN``, ``HIDDEN``, ``DEFAULT``, or
    #: ``UNKNOWN`` (no process that knew the task recorded it). See :mod:`tasktrail.access`.
    show_result: str = ""

    @property
    def phase(self) -> states.Phase:
        return states.phase(self.state)

    @property
    def ready(self) -> bool:
        return states.is_done(self.state)

    @property
    def retries_left(self) -> int | None:
        """Retries Celery may still schedule: none once the task is done; a ``RETRY``
        has used the one it scheduled."""
        if self.ready:
            return 0
        scheduled = 1 if self.state == states.RETRY else 0
        return states.attempts_left(self.attempt + scheduled, self.max_retries)


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a task: where and when it ran, and how it ended.

    ``state`` is the state the attempt ended in (``RETRY``, ``SUCCESS``, ``FAILURE``,
    ``LOST``, ``REVOKED``), or the current state while it runs.
    """

    number: int
    state: str
    worker: str
    worker_pid: int | None
    started_at: datetime | None
    finished_at: datetime | None
    error: TaskError | None

    @property
    def running(self) -> bool:
        """Whether the attempt is still under way: it has not ended, so it has no outcome."""
        return states.phase(self.state) is states.Phase.RUNNING


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """What an operator did to a task (retry, revoke, ...): an audit entry in its history."""

    action: str
    at: datetime
    #: Who did it, as their username read at the time ("" when not a logged-in user).
    by: str
    detail: dict[str, Any]


#: A canvas's kinds, as :class:`GroupStatus` and the chain steps name them.
GROUP, CHORD = "group", "chord"


def _summary(done: int, total: int, failed: int, noun: str = "") -> str:
    text = f"{done} of {total}{noun} done"
    return f"{text}, {failed} failed" if failed else text


@dataclasses.dataclass(frozen=True, slots=True)
class GroupStatus:
    """A group (or a chord's header, with its callback) as one unit."""

    id: str
    kind: str
    #: Up to :data:`MEMBERS_SHOWN` members, in the group's order when it was saved
    #: (``GroupResult.save()``, and every chord), else in the order they were sent.
    members: tuple[TaskRecord, ...]
    #: How many tasks the group has: Celery's count for a chord, the saved group's
    #: size, else those recorded so far.
    total: int
    #: Members by state, every recorded member counted.
    counts: Mapping[str, int]
    #: The chord's callback: its id from the join, its record once sent.
    callback_id: str = ""
    callback: TaskRecord | None = None

    @property
    def done(self) -> int:
        """Members that finished, however they ended."""
        return sum(n for state, n in self.counts.items() if states.is_done(state))

    @property
    def failed(self) -> int:
        return sum(self.counts.get(state, 0) for state in states.UNSUCCESSFUL)

    @property
    def running(self) -> int:
        return sum(
            n for state, n in self.counts.items() if states.phase(state) is states.Phase.RUNNING
        )

    @property
    def waiting(self) -> int:
        return max(0, self.total - self.done - self.running)

    @property
    def header_ready(self) -> bool:
        return self.total > 0 and self.done >= self.total

    @property
    def ready(self) -> bool:
        """Every member finished, and a chord's callback too."""
        if self.kind == CHORD:
            # A failed header task fails the callback at once; the others still run.
            return self.header_ready and self.callback is not None and self.callback.ready
        return self.header_ready

    @property
    def state(self) -> str:
        """One state for the whole: ``SUCCESS`` once every part succeeded, ``FAILURE``
        once it finished with a part unsuccessful, ``STARTED`` while any part ran or
        finished, else ``PENDING``."""
        if self.ready:
            callback_ok = self.callback is None or self.callback.state == states.SUCCESS
            return states.SUCCESS if not self.failed and callback_ok else states.FAILURE
        if self.done or self.running or (self.callback is not None):
            return states.STARTED
        return states.PENDING

    @property
    def progress(self) -> str:
        """For people: ``7 of 10 done, 1 failed``."""
        return _summary(self.done, self.total, self.failed)

    @property
    def percent(self) -> float:
        return 100.0 * min(self.done, self.total) / self.total if self.total else 0.0

    @property
    def result(self) -> Any:
        """Once it succeeded: the chord's callback's result, or the members' results in
        order (``None`` while not complete, or when not every member is listed)."""
        if self.state != states.SUCCESS:
            return None
        if self.callback is not None:
            return self.callback.result
        if len(self.members) < self.total:
            return None
        return [m.result for m in self.members]


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step of a chain; ``record`` is ``None`` until Celery sends it."""

    position: int
    task_id: str
    name: str
    record: TaskRecord | None
    #: A step that is a group or chord, as one unit.
    group: GroupStatus | None = None

    @property
    def sent(self) -> bool:
        return self.record is not None or self.group is not None

    @property
    def state(self) -> str:
        if self.group is not None:
            return self.group.state
        return states.PENDING if self.record is None else self.record.state

    @property
    def ready(self) -> bool:
        if self.group is not None:
            return self.group.ready
        return self.record is not None and self.record.ready


@dataclasses.dataclass(frozen=True, slots=True)
class ChainStatus:
    """A chain: its steps in order, and which one runs now."""

    id: str
    steps: tuple[Step, ...]

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps if s.ready)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.steps if s.ready and s.state in states.UNSUCCESSFUL)

    @property
    def current(self) -> Step | None:
        """The step running or next to run; ``None`` once the chain has finished."""
        if self.ready:
            return None
        return next((s for s in self.steps if not s.ready), None)

    @property
    def ready(self) -> bool:
        # A failed step ends the chain: Celery fails the steps after it at once.
        return bool(self.steps) and (self.failed > 0 or all(s.ready for s in self.steps))

    @property
    def state(self) -> str:
        if self.ready:
            return states.FAILURE if self.failed else states.SUCCESS
        return (
            states.STARTED
            if any(s.sent and s.state != states.PENDING for s in self.steps)
            else states.PENDING
        )

    @property
    def progress(self) -> str:
        """For people: ``1 of 3 steps done``."""
        return _summary(self.done, len(self.steps), self.failed, " steps")

    @property
    def percent(self) -> float:
        return 100.0 * self.done / len(self.steps) if self.steps else 0.0

    @property
    def result(self) -> Any:
        """The last step's result, once the chain succeeded."""
        if self.state != states.SUCCESS:
            return None
        last = self.steps[-1]
        return last.group.result if last.group is not None else last.record and last.record.result
