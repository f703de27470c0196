"""Worker-side upkeep: heartbeats, the lost-task check, revocations and expiry.

One thread in the worker's main process, started by ``worker_init`` and stopped by
``worker_shutdown`` (see :mod:`tasktrail.celery.signals`): the main process is the one
whose liveness matters, and the thread's database connection is its own (opened in
this thread, never used by the pool processes forked later). No celery beat needed.

Every ``HEARTBEAT_INTERVAL`` the worker records its heartbeat and picks up revocations
it missed. Chores for the whole fleet go to one worker at a time through leases: the
lost-task check (every interval) and expiry (every ``CLEANUP_INTERVAL``, in slices of
at most half an interval, so heartbeats stay on time).

Liveness (the rule and its bounds are in docs/failures.md, "Lost workers"):

- Heartbeats are stamped by the database's clock (:func:`tasktrail.store.workers.beat`);
  a worker counts as silent :func:`silent_in` after its last one, which covers a
  database outage of up to ``LOST_AFTER`` plus the heartbeat before and after it.
- Beats keep to a schedule of their own (the chores between them do not push them
  back); a failed one is tried again after a quarter interval, so the first heartbeat
  after an outage lands promptly.
- The lost-task check does not act on silence it may have shared: after any of this
  process's own upkeep calls fails or stalls (:func:`stalled_after`), it settles nothing
  until ``LOST_AFTER`` has passed without trouble, and a read of the heartbeats that
  stalled is not acted on. It never judges its own main process silent.
- The worker's clock is compared with the database's at every heartbeat; a difference
  over :data:`CLOCK_SKEW_WARNING` is logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import celery
from celery.worker import state as worker_state
from django.db import connections
from django.utils import timezone

from .. import conf
from ..store import expiry, revocations, spool, timeouts, workers
from ..threads import start_daemon
from . import reaper

logger = logging.getLogger("tasktrail.celery")

REAPER = "reaper"
CLEANUP = "cleanup"
# Revocations are read again from a little before the newest seen, in case one was
# committed late; Celery's revoked set ignores duplicates.
_REVOCATION_OVERLAP = timedelta(minutes=1)
_STARTUP_WAIT = 5.0
#: A difference between this worker's clock and the database's that is logged. Liveness
#: no longer depends on it, but the times the worker records (a task's start and end,
#: expiry) are its own: NTP keeps clocks within milliseconds, so 2 s is a broken clock.
CLOCK_SKEW_WARNING = timedelta(seconds=2)


def silent_in(settings: conf.Settings) -> timedelta:
    """How long after its last heartbeat (database clock) a worker counts as silent.

    An outage of ``LOST_AFTER`` can fall up to one interval after the last heartbeat
    that got through, and the next gets through up to a quarter interval (the retry)
    after it ends: two intervals on top leave room for a slow write.
    """
    return settings.LOST_AFTER + 2 * settings.HEARTBEAT_INTERVAL


def stalled_after(settings: conf.Settings) -> float:
    """Seconds an upkeep call may take before it counts as an outage seen by this worker.

    A stall the whole fleet shared can make healthy workers look silent only if it
    lasts over ``LOST_AFTER`` plus an interval (see :func:`silent_in`); one of this
    worker's calls, made at least every interval, then waits at least ``LOST_AFTER``.
    Half of that leaves a wide margin, and is still over an interval (``LOST_AFTER`` is
    at least two), far beyond a slow query.
    """
    return settings.LOST_AFTER.total_seconds() / 2


def clock_offset(before: datetime, after: datetime, theirs: datetime) -> timedelta:
    """How far ``theirs`` (the database's clock) lies outside ``[before, after]`` (ours).

    Positive when this clock is ahead. Zero inside: a call that took long proves little.
    """
    if theirs < before:
        return before - theirs
    if theirs > after:
        return after - theirs
    return timedelta(0)


class _Trouble:
    """When this process's database calls last failed or stalled (``time.monotonic()``)."""

    def __init__(self) -> None:
        self._at: float | None = None

    def now(self) -> None:
        self._at = time.monotonic()

    def none_for(self, seconds: float) -> bool:
        return self._at is None or time.monotonic() - self._at >= seconds


class Upkeep:
    def __init__(
        self, app: celery.Celery, hostname: str, pool: Callable[[], int | None] | None = None
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.pool = pool
        self.pid = os.getpid()
        self.started_at = timezone.now()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._revoked_until: datetime | None = None
        self._cleanup_due = 0.0
        self._beat_due = 0.0
        self._beat_failing_since: float | None = None
        self._skewed = False
        self._trouble = _Trouble()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start, and wait (briefly) for the first heartbeat and the revocations to load."""
        self._thread = start_daemon(self._run, "tasktrail-upkeep")
        self._ready.wait(_STARTUP_WAIT)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def _interval() -> float:
        return conf.get().HEARTBEAT_INTERVAL.total_seconds()

    def _run(self) -> None:
        # This thread's connection is tasktrail's own: bound its waits like the flush's.
        timeouts.bound(connections[conf.get().DATABASE])
        # Before the worker consumes: a revoked task must not slip through at startup.
        beating = self._heartbeat()
        self._guard(self._load_revocations)
        self._ready.set()
        while True:
            # While heartbeats fail the other chores would fail too: only the beat retries.
            if beating:
                # What stopped processes spooled; first, as it may finish tasks the check
                # would call lost. (The first run is right after startup, not before: a
                # big spool must not delay loading the revocations.)
                self._guard(spool.replay)
                self._guard(self._reap)
                self._guard(self._cleanup)
            if self._stopping.wait(max(0.0, self._beat_due - time.monotonic())):
                break
            beating = self._heartbeat()
            if beating:
                self._guard(self._sync_revocations)
        self._guard(self._farewell)
        connections[conf.get().DATABASE].close()

    def _guard(self, chore: Callable[[], None]) -> bool:
        """Run a chore; ``False`` (logged, and counted as trouble) if it failed."""
        started = time.monotonic()
        try:
            chore()
        except Exception:
            logger.exception("tasktrail: worker upkeep (%s) failed", chore.__name__)
            self._failed()
            return False
        finally:
            self._timed(chore.__name__, started)
        return True

    def _timed(self, what: str, started: float) -> None:
        took = time.monotonic() - started
        if took > stalled_after(conf.get()):
            logger.warning("tasktrail: worker upkeep (%s) took %.1f s", what, took)
            self._trouble.now()

    def _failed(self) -> None:
        self._trouble.now()
        # A broken connection must not be reused by the next chore.
        connections[conf.get().DATABASE].close()

    def _heartbeat(self) -> bool:
        """Beat on schedule; retried sooner after a failure, logged once per outage."""
        started = time.monotonic()
        self._beat_due = started + self._interval() / 4
        try:
            self._beat()
        except Exception:
            if self._beat_failing_since is None:
                self._beat_failing_since = started
                logger.exception("tasktrail: could not write this worker's heartbeat")
            self._failed()
            return False
        finally:
            self._timed("heartbeat", started)
        self._beat_due = started + self._interval()
        if self._beat_failing_since is not None:
            logger.warning(
                "tasktrail: heartbeat written again after %.1f s of database errors",
                time.monotonic() - self._beat_failing_since,
            )
            self._beat_failing_since = None
        return True

    def _beat(self) -> None:
        settings = conf.get()
        active = len(worker_state.active_requests)
        waiting = max(0, len(worker_state.reserved_requests) - active)
        before = timezone.now()
        stamped = workers.beat(
            self.hostname,
            self.pid,
            self.started_at,
            silent_in(settings),
            active,
            waiting,
            None if self.pool is None else self.pool(),
        )
        self._check_clock(clock_offset(before, timezone.now(), stamped))

    def _check_clock(self, offset: timedelta) -> None:
        skewed = abs(offset) > CLOCK_SKEW_WARNING
        if skewed and not self._skewed:
            logger.warning(
                "tasktrail: this worker's clock is %.1f s %s the database's (more than %.0f s):"
                " liveness is judged by the database's clock, but the times this worker"
                " records (task start and end, expiry) are its own; synchronise it (NTP)",
                abs(offset.total_seconds()),
                "ahead of" if offset > timedelta(0) else "behind",
                CLOCK_SKEW_WARNING.total_seconds(),
            )
        elif self._skewed and not skewed:
            logger.warning("tasktrail: this worker's clock agrees with the database's again")
        self._skewed = skewed

    def _farewell(self) -> None:
        workers.stop(self.hostname, self.pid)
        for lease in (REAPER, CLEANUP):
            workers.release(lease, self.hostname)

    def _load_revocations(self) -> None:
        revoked = revocations.since(None)
        # The worker does not consume yet, so its revoked set can be filled directly.
        worker_state.revoked.update([task_id for task_id, _ in revoked])
        self._revoked_until = revoked[-1][1] if revoked else None

    def _sync_revocations(self) -> None:
        since = None if self._revoked_until is None else self._revoked_until - _REVOCATION_OVERLAP
        revoked = revocations.since(since)
        missed = [task_id for task_id, _ in revoked if task_id not in worker_state.revoked]
        if missed:
            # Through Celery's own control path, which the main loop handles safely.
            self.app.control.revoke(missed, destination=[self.hostname])
        if revoked:
            self._revoked_until = revoked[-1][1]

    def _claim(self, lease: str, seconds: float) -> bool:
        return workers.claim(lease, self.hostname, seconds)

    def _reap(self) -> None:
        settings = conf.get()
        if not self._trouble.none_for(settings.LOST_AFTER.total_seconds()):
            # Silence seen now may be our own outage's: every worker gets LOST_AFTER to
            # heartbeat again. Another worker, untroubled, takes the lease meanwhile.
            return
        started = time.monotonic()
        # Held a little longer than one interval, so a slow check does not lose it.
        if not self._claim(REAPER, 2 * self._interval()):
            return
        checker = workers.MainProcess(self.hostname, self.pid)
        try:
            reaper.reap(self.app, checker, read_by=started + stalled_after(settings))
        except reaper.Stalled as stalled:
            logger.warning(
                "tasktrail: the lost-task check waited on the database (%s); it settles"
                " nothing until %.0f s without trouble",
                stalled,
                settings.LOST_AFTER.total_seconds(),
            )
            self._trouble.now()

    def _cleanup(self) -> None:
        settings = conf.get()
        if settings.CLEANUP_INTERVAL is None or time.monotonic() < self._cleanup_due:
            return
        every = settings.CLEANUP_INTERVAL.total_seconds()
        if not self._claim(CLEANUP, every):
            self._cleanup_due = time.monotonic() + self._interval()
            return
        now = timezone.now()
        deadline = time.monotonic() + self._interval() / 2
        deleted, done = expiry.delete_tasks(now, settings.CLEANUP_BATCH, deadline)
        if done:
            expiry.delete_rest(now)
            self._cleanup_due = time.monotonic() + every
        if deleted:
            logger.info("tasktrail: deleted %d expired task(s)", deleted)


_upkeep: Upkeep | None = None


def start(app: celery.Celery, hostname: str, pool: Callable[[], int | None] | None = None) -> None:
    global _upkeep
    if _upkeep is None:
        _upkeep = Upkeep(app, hostname, pool)
        _upkeep.start()


def stop() -> None:
    global _upkeep
    if _upkeep is not None:
        _upkeep.stop()
        _upkeep = None
