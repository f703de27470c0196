"""Progress reported from running tasks, coalesced per task before it reaches the store.

Why: a task may report progress in a tight loop (100,000 calls a second). A call only
replaces its task's pending value under a lock (about a microsecond); a background
thread turns the latest value into a store event at most once per
``PROGRESS_INTERVAL``, and at once when the task has been quiet. Before a task's
outcome is recorded the recorder drains its pending value, so the final progress
reaches the write buffer, and so the database, before the outcome.

Which task: Celery's ``current_task`` is per thread, and a thread the task starts has
none. This module knows the tasks running in its process (from ``task_prerun`` to
``task_postrun``); when exactly one runs, as in every prefork or solo pool process,
a report from any thread belongs to it. Where several run at once (a threads pool),
``tasktrail.reporter()`` captures the current task for the threads it starts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, NamedTuple

from celery import current_task, signals
from django.utils import timezone

from .. import conf, jsoncodec, states, store
from ..exceptions import PayloadError
from ..threads import start_daemon

logger = logging.getLogger("tasktrail.celery")


class Report(NamedTuple):
    # A named tuple: built on every call, and a frozen dataclass costs three times more.
    current: float
    total: float | None
    message: str
    #: Free-form values as JSON text, or ``None`` to keep those reported before.
    meta: str | None


class Coalescer:
    """The tasks running in this process and their latest unwritten progress."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # Held while values move to the store, so a drain waits for a push under way.
        self._push_lock = threading.Lock()
        self._wake = threading.Event()
        self._running: dict[str, int] = {}
        self._pending: dict[str, tuple[int, Report]] = {}
        self._thread: threading.Thread | None = None

    def begin(self, task_id: str, attempt: int) -> None:
        with self._lock:
            self._running[task_id] = attempt

    def end(self, task_id: str) -> None:
        """Write what ``task_id`` reported last and forget it."""
        self.drain(task_id)
        with self._lock:
            self._running.pop(task_id, None)
            # Reported by a thread since: later than the outcome, which it cannot replace.
            self._pending.pop(task_id, None)

    def resolve(self, task_id: str | None = None) -> str:
        """``task_id``, else this process's only running task, else the thread's task."""
        with self._lock:
            if task_id is None and len(self._running) == 1:
                # Also the fast path: Celery's current_task costs more than all the rest.
                return next(iter(self._running))
            several = len(self._running) > 1
        if task_id is None:
            task = current_task
            task_id = task.request.id if task else None
            if task_id is None and several:
                raise RuntimeError(
                    "tasktrail.progress() called from a thread while several tasks run in "
                    "this process: in the task, capture it with report = tasktrail.reporter()"
                )
        with self._lock:
            if task_id in self._running:
                return task_id
        raise RuntimeError("tasktrail.progress() must be called while a Celery task runs")

    def report(self, task_id: str, report: Report) -> None:
        with self._lock:
            attempt = self._running.get(task_id)
            if attempt is None:
                raise RuntimeError(f"task {task_id} is not running in this process")
            self._pending[task_id] = (attempt, report)
            if self._thread is None:
                self._thread = start_daemon(self._run, "tasktrail-progress")
        if not self._wake.is_set():
            # Set takes a lock; most calls find it set already.
            self._wake.set()

    def drain(self, task_id: str) -> None:
        """Write ``task_id``'s pending progress now, before what is recorded next."""
        with self._push_lock:
            with self._lock:
                pending = self._pending.pop(task_id, None)
            if pending is not None:
                _write(task_id, *pending)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._push_lock:
                with self._lock:
                    pending, self._pending = self._pending, {}
                for task_id, (attempt, report) in pending.items():
                    try:
                        _write(task_id, attempt, report)
                    except Exception:
                        # This thread serves every task of the process: it must live on.
                        logger.exception("tasktrail: cannot record progress of %s", task_id)
            # Values reported meanwhile wait for the next round: one write per interval.
            time.sleep(conf.get().PROGRESS_INTERVAL.total_seconds())


def _write(task_id: str, attempt: int, report: Report) -> None:
    store.record(
        store.event(
            task_id,
            states.PROGRESS,
            attempt,
            timezone.now(),
            progress_current=report.current,
            progress_total=report.total,
            progress_message=report.message,
            meta=report.meta,
        )
    )


_coalescer = Coalescer()
begin = _coalescer.begin
drain = _coalescer.drain
resolve = _coalescer.resolve


def report(task_id: str, current: float, total: float | None, message: str, meta: Any) -> None:
    """Queue progress for ``task_id``; ``meta`` must be JSON (checked now, not later)."""
    try:
        encoded = jsoncodec.dumps(meta) if meta else None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"progress meta must be JSON values: {exc}") from None
    _coalescer.report(task_id, Report(current, total, message, encoded))


def _postrun(task_id: str = "", **_: Any) -> None:
    if task_id:
        _coalescer.end(task_id)


def connect() -> None:
    # begin() is called by the recorder at prerun, which knows the attempt number.
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="tasktrail.progress.postrun")
