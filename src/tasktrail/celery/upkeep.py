"""Worker-side upkeep: heartbeats, the lost-task check, revocations and expiry.

One thread in the worker's main process, started by ``worker_init`` and stopped by
``worker_shutdown`` (see :mod:`tasktrail.celery.signals`): the main process is the one
whose liveness matters, and the thread's database connection is its own (opened in
this thread, never used by the pool processes forked later). No celery beat needed.

Every ``HEARTBEAT_INTERVAL`` the worker records its heartbeat and picks up revocations
it missed. Chores for the whole fleet go to one worker at a time through leases: the
lost-task check (every interval) and expiry (every ``CLEANUP_INTERVAL``, in slices of
at most half an interval, so heartbeats stay on time).
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
from ..store import expiry, revocations, spool, workers
from ..threads import start_daemon
from . import reaper

logger = logging.getLogger("tasktrail.celery")

REAPER = "reaper"
CLEANUP = "cleanup"
# Revocations are read again from a little before the newest seen, in case one was
# committed late; Celery's revoked set ignores duplicates.
_REVOCATION_OVERLAP = timedelta(minutes=1)
_STARTUP_WAIT = 5.0


class Upkeep:
    def __init__(self, app: celery.Celery, hostname: str) -> None:
        self.app = app
        self.hostname = hostname
        self.pid = os.getpid()
        self.started_at = timezone.now()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._revoked_until: datetime | None = None
        self._cleanup_due = 0.0
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
        # Before the worker consumes: a revoked task must not slip through at startup.
        self._guard(self._beat)
        self._guard(self._load_revocations)
        self._ready.set()
        while True:
            # What stopped processes spooled; first, as it may finish tasks the check would
            # call lost. (The first run is right after startup, not before: a big spool
            # must not delay loading the revocations.)
            self._guard(spool.replay)
            self._guard(self._reap)
            self._guard(self._cleanup)
            if self._stopping.wait(self._interval()):
                break
            self._guard(self._beat)
            self._guard(self._sync_revocations)
        self._guard(self._farewell)
        connections[conf.get().DATABASE].close()

    def _guard(self, chore: Callable[[], None]) -> None:
        try:
            chore()
        except Exception:
            logger.exception("tasktrail: worker upkeep (%s) failed", chore.__name__)
            # A broken connection must not be reused by the next chore.
            connections[conf.get().DATABASE].close()

    def _beat(self) -> None:
        now = timezone.now()
        active = len(worker_state.active_requests)
        waiting = max(0, len(worker_state.reserved_requests) - active)
        silent_after = now + conf.get().LOST_AFTER
        workers.beat(self.hostname, self.pid, self.started_at, now, silent_after, active, waiting)

    def _farewell(self) -> None:
        workers.stop(self.hostname, self.pid, timezone.now())
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
        now = timezone.now()
        return workers.claim(lease, self.hostname, now, now + timedelta(seconds=seconds))

    def _reap(self) -> None:
        # Held a little longer than one interval, so a slow check does not lose it.
        if self._claim(REAPER, 2 * self._interval()):
            reaper.reap(self.app)

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


def start(app: celery.Celery, hostname: str) -> None:
    global _upkeep
    if _upkeep is None:
        _upkeep = Upkeep(app, hostname)
        _upkeep.start()


def stop() -> None:
    global _upkeep
    if _upkeep is not None:
        _upkeep.stop()
        _upkeep = None
