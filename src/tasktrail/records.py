"""Frozen value objects handed to users; never ORM rows."""

from __future__ import annotations

import dataclasses
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
