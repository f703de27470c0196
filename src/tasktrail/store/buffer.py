"""Per-process write buffer: events are folded in memory and flushed in one upsert.

Why: one round trip per transition halves Celery's throughput. Events for the same
task fold together (a ``STARTED`` still buffered is folded into the outcome; a
flood of progress updates becomes one row), and a background thread writes all
buffered tasks in one statement every ``FLUSH_INTERVAL``. A flush that fails puts
its rows back, so a database restart delays writes but loses none; the thread then
backs off (up to 5 s between attempts), and nothing but :meth:`WriteBuffer.close`
cuts that wait short. Reads in this process flush first, so a process always reads
its own writes.

A process that stops calls :meth:`WriteBuffer.close`: a final flush bounded by
``FINAL_FLUSH_TIMEOUT``, after which whatever is still unwritten (buffered, or in a
write that has not returned) goes to the spool (:mod:`tasktrail.store.spool`), which
a worker writes once the database is back.
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
#: Where :meth:`WriteBuffer.close` puts what it could not write (``spool.write``).
Spill = Callable[[list[Row], list[HistoryEntry]], object]

_MAX_BACKOFF = 5.0


class WriteBuffer:
    def __init__(
        self,
        writer: Writer,
        interval: float,
        max_buffered: int,
        spill: Spill | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        self._writer = writer
        self._interval = interval
        self._max_buffered = max_buffered
        self._spill = spill
        self._close_timeout = close_timeout
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.close)

    def _reset(self) -> None:
        # In a forked child the parent's rows are the parent's to write, and its
        # thread does not exist here.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # Held while rows are being spooled: they count as settled only once on disk.
        self._spool_lock = threading.Lock()
        self._wake = threading.Event()
        self._urgent = threading.Event()
        # Set by close(): the only thing that cuts a backoff short.
        self._closing = threading.Event()
        self._flushed = threading.Condition()
        self._added = 0
        self._written = 0
        # Events up to this count are committed or spooled: nothing more to do at exit.
        self._settled = 0
        self._failures = 0
        self._rows: dict[str, Row] = {}
        self._inflight: dict[str, Row] = {}
        self._inflight_history: list[HistoryEntry] = []
        # close() spooled the write in flight: if it fails, its rows are not put back.
        self._inflight_spooled = False
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
        # Already set while the flush thread waits out its interval: setting it again
        # takes the event's lock for nothing (about 1 µs per event, 3 events per task).
        if not self._wake.is_set():
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

    def flush(self) -> int:
        """Write everything buffered now and return how many rows; on failure the rows go
        back (unless close() spooled them meanwhile) and the error is raised."""
        with self._flush_lock:
            with self._lock:
                rows, history = self._rows, self._history
                self._rows, self._history = {}, []
                # Still pending for readers until committed.
                self._inflight, self._inflight_history = rows, history
                self._inflight_spooled = False
                upto = self._added
            try:
                if rows:
                    self._writer(list(rows.values()), history)
            except BaseException:
                # One step under the lock: close() finds these rows either in flight or
                # back in the buffer, never in neither.
                with self._lock:
                    if not self._inflight_spooled:
                        self._put_back(rows.values(), history)
                    self._inflight, self._inflight_history = {}, []
                with self._flushed:
                    self._failures += 1
                    self._flushed.notify_all()
                raise
            with self._lock:
                self._inflight, self._inflight_history = {}, []
            with self._flushed:
                self._written = upto
                self._flushed.notify_all()
            return len(rows)

    def _put_back(self, rows: Iterable[Row], history: list[HistoryEntry]) -> None:
        """Return a failed write's rows to the buffer; the caller holds ``_lock``."""
        for row in rows:
            newer = self._rows.get(row["task_id"])
            self._rows[row["task_id"]] = row if newer is None else fold(row, newer)[0]
        self._history[:0] = history

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = start_daemon(self._run, "tasktrail-flush")

    def _run(self) -> None:
        backoff = self._interval
        failing = False
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if failing:
                # Backing off: neither a full buffer nor a reader's sync() may shorten
                # it (a full buffer once made 29 attempts a second); only close() does.
                self._closing.wait(backoff)
            else:
                self._urgent.wait(self._interval)
            self._urgent.clear()
            try:
                wrote = self.flush()
            except Exception as exc:
                backoff = min(_MAX_BACKOFF, backoff * 2 + 0.05)
                self._log_failure(exc, failing, backoff)
                failing = True
                self._spill_if_full()
                self._wake.set()
            else:
                # Nothing to write (close() spooled it) proves nothing about the database.
                if failing and wrote:
                    logger.warning("tasktrail: flush succeeded again; the database is back")
                if wrote or not failing:
                    backoff, failing = self._interval, False

    def _log_failure(self, exc: Exception, again: bool, backoff: float) -> None:
        # The traceback once per outage; then one line per attempt.
        if again:
            logger.warning(
                "tasktrail: flush failed; keeping %d rows, next attempt in %.2f s (%s: %s)",
                len(self._rows),
                backoff,
                type(exc).__name__,
                exc,
            )
        else:
            logger.error(
                "tasktrail: flush failed; keeping %d rows, next attempt in %.2f s",
                len(self._rows),
                backoff,
                exc_info=exc,
            )

    def _spill_if_full(self) -> None:
        # During an outage the buffer would grow without end (about 1 KB a task, so
        # 1 GB for a million): past MAX_BUFFERED its rows go to the spool instead, which
        # a worker writes when the database answers.
        if self._spill is not None and len(self._rows) >= self._max_buffered:
            self._spool("the database is unavailable and the buffer is full")

    def close(self, timeout: float | None = None) -> None:
        """Write what is left before this process stops, waiting at most ``timeout``
        (default: the buffer's ``close_timeout``); spool whatever is not written by then.

        The flush thread writes, as always; this waits for it, never on its lock, so a
        write blocked on a dead connection cannot hold the process. Called at exit and
        when a worker process stops; logs instead of raising.
        """
        bound = self._close_timeout if timeout is None else timeout
        # The flush thread may be spooling a full buffer: let the file be complete
        # before this process exits (a local write and fsync, not the database).
        if self._spool_lock.acquire(timeout=bound):
            self._spool_lock.release()
        with self._lock:
            target = self._added
        with self._flushed:
            failures = self._failures
            if max(self._written, self._settled) >= target:
                return
        self._ensure_thread()
        self._closing.set()
        self._urgent.set()
        self._wake.set()
        try:
            with self._flushed:
                self._flushed.wait_for(
                    lambda: self._written >= target or self._failures > failures, bound
                )
                written = self._written >= target
        finally:
            self._closing.clear()
        if not written:
            self._spool("final flush failed")

    def _spool(self, reason: str) -> None:
        """Hand every row not yet committed (buffered or in flight) to the spill."""
        with self._spool_lock:
            self._spool_now(reason)

    def _spool_now(self, reason: str) -> None:
        with self._lock:
            rows = dict(self._inflight)
            for task_id, newer in self._rows.items():
                old = rows.get(task_id)
                rows[task_id] = newer if old is None else fold(old, newer)[0]
            history = [*self._inflight_history, *self._history]
            self._inflight_spooled = bool(self._inflight)
            self._rows, self._history = {}, []
            self._settled = self._added
        if not rows:
            return
        try:
            if self._spill is None:
                raise RuntimeError("no spool")
            where = self._spill(list(rows.values()), history)
        except Exception:
            logger.exception("tasktrail: %s and spooling failed; %d rows lost", reason, len(rows))
        else:
            logger.warning(
                "tasktrail: %s; %d rows spooled to %s for a worker to write",
                reason,
                len(rows),
                where,
            )
