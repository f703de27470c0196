"""Progress reported from running tasks, coalesced per task before it reaches the store.

Why: a task may report progress in a tight loop (100,000 calls a second), from many
threads at once. A call only replaces its run's latest value, without a lock (see
``Coalescer``); a background thread turns the latest value into a store event at
most once per ``PROGRESS_INTERVAL``, and at once when the task has been quiet. Before a task's
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
from datetime import datetime
from typing import Any

from celery import current_task, signals
from django.utils import timezone

from .. import conf, jsoncodec, payload, states, store
from ..exceptions import PayloadError
from ..threads import start_daemon

logger = logging.getLogger("tasktrail.celery")


#: ``(current, total, message, meta)``; meta as JSON text, or ``None`` to keep the
#: meta reported before. A plain tuple: built on every call, where a named tuple took
#: ten times longer (1.2 µs against 0.1 µs measured, a third of a call).
Report = tuple[float, float | None, str, str | None]


class Slot:
    """One run of a task in this process: its latest report and the last one written.

    Reporting is one attribute assignment, atomic under the GIL, so the hot path takes
    no lock: the writer thread reads ``latest`` and never clears it (clearing could
    erase a newer value), it remembers what it wrote and skips a slot whose latest
    report is that one.
    """

    __slots__ = ("attempt", "latest", "open", "task_id", "written")

    def __init__(self, task_id: str, attempt: int) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.latest: Report | None = None
        self.written: Report | None = None
        #: False from the end of the run: later reports are refused, none is written.
        self.open = True

    def unwritten(self) -> Report | None:
        latest = self.latest
        return None if latest is self.written else latest


class _ThreadTask(threading.local):
    #: The run this thread executes (set at prerun, in the thread running the task).
    slot: Slot | None = None


class Coalescer:
    """The tasks running in this process and their latest unwritten progress.

    Why no lock per call: a process-wide lock taken two or three times per call, and
    under a threads pool Celery's ``current_task`` proxy read on every call, cost 26 µs
    of CPU per call with 50 threads reporting against 5.3 µs for one thread (the lock
    handed from thread to thread with a futex wake each time, a lock convoy: up to half
    the process's CPU in the kernel), and 24 µs in a ``--pool=threads -c 50`` worker
    (31,000 calls/s in all). A call now finds its slot without a lock (a thread-local
    set at prerun, the only running task, or a reporter's bound slot), assigns the
    value, and sets the wake event only when the writer waits; ``current_task`` is read
    once per thread and run: 1.7 µs per call for one thread and for 50, 2.2 µs in that
    worker. Measured by ``python -m bench.progress`` (bench/README.md).
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # Held by begin() and end(), never by a report.
        self._lock = threading.Lock()
        # Held while values move to the store, so a drain waits for a push under way.
        self._push_lock = threading.Lock()
        self._wake = threading.Event()
        #: True while the writer waits for a report: the next report sets ``_wake``.
        self._idle = True
        self._slots: dict[str, Slot] = {}
        #: The slot of the only task running here, else ``None`` (prefork, solo: always).
        self._only: Slot | None = None
        self._thread_task = _ThreadTask()
        self._thread: threading.Thread | None = None

    def begin(self, task_id: str, attempt: int) -> None:
        """Called at prerun, in the thread that runs the task."""
        with self._lock:
            slot = self._slots.get(task_id)
            if slot is None:
                slot = self._slots[task_id] = Slot(task_id, attempt)
            self._only = slot if len(self._slots) == 1 else None
        if slot.attempt != attempt:
            # The same id again before its end (an eager retry): what the earlier
            # attempt reported is written as its own.
            self._drain(slot)
            slot.attempt = attempt
        self._thread_task.slot = slot

    def end(self, task_id: str) -> None:
        """Write what ``task_id`` reported last and forget it."""
        self.drain(task_id)
        with self._lock:
            slot = self._slots.pop(task_id, None)
            if slot is not None:
                # Reported by a thread since: later than the outcome, which it cannot replace.
                slot.open = False
            self._only = next(iter(self._slots.values())) if len(self._slots) == 1 else None
        if self._thread_task.slot is slot:
            self._thread_task.slot = None

    def resolve(self, task_id: str | None = None) -> Slot:
        """``task_id``'s run, else the thread's task, else this process's only running task."""
        if task_id is None:
            slot = self._thread_task.slot or self._only
            if slot is not None and slot.open:
                return slot
        return self._resolve(task_id)

    def _resolve(self, task_id: str | None) -> Slot:
        with self._lock:
            if task_id is None and len(self._slots) == 1:
                return next(iter(self._slots.values()))
            several = len(self._slots) > 1
        cache = task_id is None
        if task_id is None:
            # Costs more than the rest of a call: read once per thread and run (below).
            task = current_task
            task_id = task.request.id if task else None
            if task_id is None and several:
                raise RuntimeError(
                    "tasktrail.progress() called from a thread while several tasks run in "
                    "this process: in the task, capture it with report = tasktrail.reporter()"
                )
        with self._lock:
            slot = self._slots.get(task_id) if task_id is not None else None
        if slot is None and not cache:
            raise RuntimeError(f"task {task_id} is not running in this process")
        if slot is None:
            raise RuntimeError("tasktrail.progress() must be called while a Celery task runs")
        if cache:
            # This thread runs that task (Celery's current_task is per thread) until end().
            self._thread_task.slot = slot
        return slot

    def report(
        self, slot: Slot, current: float, total: float | None, message: str, meta: Any
    ) -> None:
        """Queue progress for ``slot``'s run; ``meta`` must be JSON (checked now, not later)."""
        if not slot.open:
            raise RuntimeError(f"task {slot.task_id} is not running in this process")
        if meta:
            try:
                encoded = jsoncodec.dumps(meta)
            except (TypeError, ValueError) as exc:
                raise PayloadError(f"progress meta must be JSON values: {exc}") from None
        else:
            encoded = None
        slot.latest = (current, total, message, encoded)
        if self._idle:
            # Most calls find the writer awake already and skip this.
            self._idle = False
            self._kick()

    def _kick(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = start_daemon(self._run, "tasktrail-progress")
        self._wake.set()

    def drain(self, task_id: str, before: datetime | None = None) -> None:
        """Write ``task_id``'s pending progress now, before what is recorded next (an
        outcome at ``before``: the progress is stamped no later, so the history, read
        by time, lists it first)."""
        slot = self._slots.get(task_id)
        if slot is not None:
            self._drain(slot, before)

    def _drain(self, slot: Slot, before: datetime | None = None) -> None:
        with self._push_lock:
            self._push(slot, before)

    def _push(self, slot: Slot, before: datetime | None = None) -> None:
        """Write ``slot``'s latest report unless it is written already; hold ``_push_lock``."""
        report = slot.unwritten()
        if report is not None:
            slot.written = report
            _write(slot.task_id, slot.attempt, report, before)

    def _run(self) -> None:
        while True:
            self._wake.clear()
            # From here a report wakes this thread; one made before is seen below.
            self._idle = True
            with self._lock:
                slots = list(self._slots.values())
            if not any(slot.unwritten() is not None for slot in slots):
                self._wake.wait()
                continue
            with self._push_lock:
                for slot in slots:
                    try:
                        if slot.open:
                            self._push(slot)
                    except Exception:
                        # This thread serves every task of the process: it must live on.
                        logger.exception("tasktrail: cannot record progress of %s", slot.task_id)
            # Values reported meanwhile wait for the next round: one write per interval.
            time.sleep(conf.get().PROGRESS_INTERVAL.total_seconds())


def _write(task_id: str, attempt: int, report: Report, before: datetime | None = None) -> None:
    current, total, message, meta = report
    now = timezone.now()
    store.record(
        store.event(
            task_id,
            states.PROGRESS,
            attempt,
            now if before is None else min(now, before),
            progress_current=current,
            progress_total=total,
            # Capped here, once per write, not on every call (tasktrail.payload).
            progress_message=payload.message(message),
            meta=payload.meta_json(meta),
        )
    )


_coalescer = Coalescer()
begin = _coalescer.begin
end = _coalescer.end
drain = _coalescer.drain
resolve = _coalescer.resolve
report = _coalescer.report


def _postrun(task_id: str = "", **_: Any) -> None:
    if task_id:
        _coalescer.end(task_id)


def connect() -> None:
    # begin() is called by the recorder at prerun, which knows the attempt number.
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="tasktrail.progress.postrun")
