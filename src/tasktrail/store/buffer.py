"""Per-process write buffer: events are folded in memory and flushed in one upsert.

Why: one round trip per transition halves Celery's throughput. Events for the same
task fold together (a ``STARTED`` still buffered is folded into the outcome; a
flood of progress updates becomes one row), and a background thread writes all
buffered tasks in one statement every ``FLUSH_INTERVAL``. A flush that fails puts
its rows back, so a database restart delays writes but loses none. Reads in this
process flush first, so a process always reads its own writes.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..threads import start_daemon
from .history import HistoryEntry, Repeats
from .schema import Row, fold

logger = logging.getLogger("tasktrail.store")

Writer = Callable[[list[Row], list[HistoryEntry]], None]

_MAX_BACKOFF = 5.0


class WriteBuffer:
    def __init__(self, writer: Writer, interval: float, max_buffered: int) -> None:
        self._writer = writer
        self._interval = interval
        self._max_buffered = max_buffered
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.close)

    def _reset(self) -> None:
        # In a forked child the parent's rows are the parent's to write, and its
        # thread does not exist here.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._flushed = threading.Condition()
        self._added = 0
        self._written = 0
        self._rows: dict[str, Row] = {}
        self._inflight: dict[str, Row] = {}
        self._history: list[HistoryEntry] = []
        self._repeats = Repeats()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, row: Row, detail: dict[str, Any] | None = None) -> None:
        task_id = row["task_id"]
        with self._lock:
            old = self._rows.get(task_id)
            if old is None:
                merged, accepted = row, True
            else:
                merged, accepted = fold(old, row)
            self._rows[task_id] = merged
            if accepted:
                self._note_history(row, detail)
            self._added += 1
            full = len(self._rows) >= self._max_buffered
        if full:
            self._urgent.set()
        self._ensure_thread()
        self._wake.set()

    def _note_history(self, row: Row, detail: dict[str, Any] | None) -> None:
        task_id, state, attempt = row["task_id"], row["state"], row["attempt"]
        if not self._repeats.is_repeat(task_id, state, attempt):
            entry = HistoryEntry(task_id, state, attempt, row["updated_at"], row["worker"], detail)
            self._history.append(entry)

    def pending(self, task_id: str) -> bool:
        return task_id in self._rows or task_id in self._inflight

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until everything added so far is written; ``False`` on timeout.

        The flush thread does the writing, never the caller: the caller may be
        inside a transaction of its own that must not carry tasktrail's writes.
        """
        with self._lock:
            target = self._added
        if self._thread is None:
            return self._written >= target
        self._urgent.set()
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self._written >= target, timeout)

    def flush(self) -> None:
        """Write everything buffered now; on failure the rows go back and the error is raised."""
        with self._flush_lock:
            with self._lock:
                rows, history = self._rows, self._history
                self._rows, self._history = {}, []
                # Still pending for readers until committed.
                self._inflight = rows
                upto = self._added
            try:
                if rows:
                    self._writer(list(rows.values()), history)
            except BaseException:
                self._put_back(rows.values(), history)
                raise
            finally:
                self._inflight = {}
            with self._flushed:
                self._written = upto
                self._flushed.notify_all()

    def _put_back(self, rows: Iterable[Row], history: list[HistoryEntry]) -> None:
        with self._lock:
            for row in rows:
                newer = self._rows.get(row["task_id"])
                self._rows[row["task_id"]] = row if newer is None else fold(row, newer)[0]
            self._history[:0] = history

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = start_daemon(self._run, "tasktrail-flush")

    def _run(self) -> None:
        backoff = self._interval
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            self._urgent.wait(backoff)
            self._urgent.clear()
            try:
                self.flush()
            except Exception:
                logger.exception("tasktrail: flush failed; keeping %d rows", len(self._rows))
                backoff = min(_MAX_BACKOFF, backoff * 2 + 0.05)
                self._wake.set()
            else:
                backoff = self._interval

    def close(self) -> None:
        """Flush what is left; called at exit and when a worker process stops."""
        try:
            self.flush()
        except Exception:
            logger.exception("tasktrail: final flush failed; %d rows lost", len(self._rows))
