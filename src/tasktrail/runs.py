"""A task's attempts, read from its history: where each run ran, when, and how it ended.

Pure code over :class:`~tasktrail.records.Transition` values: the history already holds
every accepted transition with its attempt number, worker and error, so attempts cost
the write path nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from . import states
from .records import Attempt, TaskError, Transition


@dataclasses.dataclass(slots=True)
class _Run:
    state: str
    worker: str = ""
    worker_pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: TaskError | None = None

    def start(self, t: Transition) -> None:
        if self.finished_at is not None:
            # Run again under the same number (a re-delivered message): the earlier end
            # no longer describes it.
            self.finished_at, self.error, self.started_at = None, None, None
        if self.started_at is None:
            self.started_at, self.worker = t.at, t.worker or self.worker
            pid = t.detail.get("pid")
            self.worker_pid = pid if isinstance(pid, int) else None
        self.state = t.state

    def end(self, t: Transition) -> None:
        self.state, self.finished_at, self.error = t.state, t.at, _error(t.detail)
        self.worker = self.worker or t.worker


def _error(detail: dict[str, Any]) -> TaskError | None:
    if not detail.get("error_type"):
        return None
    return TaskError(
        str(detail["error_type"]),
        str(detail.get("error_message", "")),
        detail.get("traceback") or None,
    )


def from_history(history: Iterable[Transition]) -> list[Attempt]:
    """Every attempt that started or ended, in order; waiting alone is not an attempt."""
    runs: dict[int, _Run] = {}
    latest = 1
    for t in history:
        # An outcome reported from outside (a revoke) does not know the attempt.
        number = t.attempt or latest
        latest = max(latest, number)
        phase = states.phase(t.state)
        if phase is states.Phase.RUNNING:
            runs.setdefault(number, _Run(t.state)).start(t)
        elif phase is states.Phase.DONE or t.state == states.RETRY:
            runs.setdefault(number, _Run(t.state)).end(t)
    numbers = sorted(runs)
    for n, later in itertools.pairwise(numbers):
        _end_unreported(runs[n], later)
    return [
        Attempt(n, r.state, r.worker, r.worker_pid, r.started_at, r.finished_at, r.error)
        for n, r in ((n, runs[n]) for n in numbers)
    ]


def _end_unreported(run: _Run, later: int) -> None:
    """A run still "running" when a later attempt exists reported no outcome: its
    process died (a re-delivered message, ``reject_on_worker_lost``). It is over, and
    lost; when it ended is not known."""
    if states.phase(run.state) is states.Phase.RUNNING:
        run.state = states.LOST
        run.error = TaskError(
            "celery.exceptions.WorkerLostError",
            f"this run reported no outcome (its process was lost); attempt {later} followed",
            None,
        )
