"""tasktrail's Python API: read a task's record, report progress from inside one."""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from datetime import timedelta
from types import ModuleType
from typing import Any

from .exceptions import PayloadError
from .records import Attempt, ChainStatus, GroupStatus, TaskRecord, Transition


def get(task_id: str) -> TaskRecord:
    """The current record of ``task_id``; raises :class:`tasktrail.TaskNotFound` if unknown."""
    from . import store

    return store.get(task_id)


def history(task_id: str) -> list[Transition]:
    """Every accepted state change of ``task_id``, oldest first."""
    from . import store

    return store.history(task_id)


def attempts(task_id: str) -> list[Attempt]:
    """Every run of ``task_id``, first to last: worker, start, end, error of each.

    A task that never started has none. Raises :class:`tasktrail.TaskNotFound` if unknown.
    """
    from . import runs, store

    found = store.history(task_id)
    if not found:
        store.get(task_id)
    return runs.from_history(found)


def group(group_id: str) -> GroupStatus:
    """A group or chord as one unit: its members' states, counts, progress
    (``7 of 10 done, 1 failed``), a chord's callback and the result once complete.

    ``group_id`` is ``group(...).apply_async().id``; for a chord, its header's
    (``chord_result.parent.id``, or ``tasktrail.get(callback_id).group_id``). Raises
    :class:`tasktrail.TaskNotFound` if no task of it was recorded.
    """
    from . import canvas

    return canvas.group(group_id)


def chain(task_id: str) -> ChainStatus:
    """A chain as one unit, from any step's id (e.g. the id ``chain(...).apply_async()``
    returns, its last step's): its steps in order, which one runs now, the result once
    complete. Raises :class:`tasktrail.TaskNotFound` if no chain has that step.
    """
    from . import canvas

    return canvas.chain(task_id)


def recent(limit: int = 50, **filters: Any) -> list[TaskRecord]:
    """The most recently updated tasks, e.g. ``recent(state="FAILURE", name="app.send")``."""
    from . import store

    return store.recent(limit, **filters)


_LARGEST = sys.float_info.max
_SMALLEST = -_LARGEST


def _number(name: str, value: Any) -> float:
    # The usual case in a few operations: an int or float (exact types: isinstance()
    # against a union cost more than the rest; the check was 22 % of a call), finite
    # (NaN fails any comparison).
    kind = type(value)
    if (kind is float or kind is int) and _SMALLEST <= value <= _LARGEST:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"progress {name} must be a finite number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError(f"progress {name} must be a finite number, got {value!r}")
    return number


@functools.cache
def _live() -> ModuleType:
    # Imported on first use, not with the package (which Django imports before setup);
    # cached, because progress() may be called 100,000 times a second.
    from .celery import progress

    return progress


def progress(current: float, total: float | None = None, message: str = "", **meta: Any) -> None:
    """Report how far the running task has come.

    Call from inside a Celery task, bound or not, or from a thread it started (in a
    pool process running one task at a time, as prefork and solo do; elsewhere use
    :func:`reporter`). Cheap to call in a tight loop: the latest value is written at
    most every ``PROGRESS_INTERVAL``, and always before the task's outcome.
    ``meta`` (JSON values) is shown with the progress.
    """
    live = _live()
    # The same call as Reporter's, written out in both: a shared helper is a Python
    # call more on every report.
    live.report(
        live.resolve(),
        _number("current", current),
        None if total is None else _number("total", total),
        str(message),
        meta,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Reporter:
    """:func:`progress` bound to one run of a task, for any thread: see :func:`reporter`."""

    task_id: str
    # The run, found once by reporter() rather than on every call (by ``task_id``
    # when built by hand).
    _slot: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __call__(
        self, current: float, total: float | None = None, message: str = "", **meta: Any
    ) -> None:
        live = _live()
        live.report(
            self._slot or live.resolve(self.task_id),
            _number("current", current),
            None if total is None else _number("total", total),
            str(message),
            meta,
        )


def reporter() -> Reporter:
    """Capture the running task, to report its progress from any thread it starts.

    Needed where several tasks run in one process (a threads pool); e.g. in the task,
    ``report = tasktrail.reporter()``, then ``report(done, total)`` in its threads.
    """
    slot = _live().resolve()
    return Reporter(slot.task_id, slot)


def status_url(task_id: str, expires: timedelta | None = None, request: Any = None) -> str:
    """A link to ``task_id``'s live status page that anyone holding it may open.

    For flows without a login (a checkout, an emailed export). Valid for ``expires``
    (default ``TASKTRAIL["LINK_EXPIRES"]``); absolute when ``request`` is given.
    """
    from urllib.parse import urlencode

    from django.urls import reverse

    from . import access

    url = reverse("tasktrail:page", args=[task_id])
    url += "?" + urlencode({"token": access.sign(task_id, expires)})
    return request.build_absolute_uri(url) if request is not None else url
