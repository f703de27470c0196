"""``RECEIVED``: recorded in the worker's main process for tasks that wait there.

Most tasks start within milliseconds of being received, and their ``STARTED`` makes a
``RECEIVED`` redundant; writing one anyway costs the main process CPU on every task. So
receipts are held for ``RECEIVED_AFTER``, and only a task still waiting then (in the
prefetch buffer behind busy pool processes) gets its ``RECEIVED``, with the time it was
really received. A task held for an ETA gets it at once.
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from .. import conf, states, store
from ..threads import start_daemon
from . import attempts, recorder


def received(request: Any) -> None:
    """``request`` is the worker's ``Request``; its context carries the message headers.

    Runs in the worker's main process, the pool's only dispatcher, for every task: the
    common case (no ETA) costs a deque append.
    """
    if not request.eta:
        _held.hold(request)
        return
    if attempts.number(request._context) > 1:
        # A retry held for its countdown: RETRY with its next_retry_at says more
        # than RECEIVED would, so the record keeps it until the attempt starts.
        return
    _record(request, timezone.now())


def _record(request: Any, at: datetime) -> None:
    context = request._context
    meta = recorder.request_meta(context)
    meta.update(name=request.name or meta["name"], received_at=at)
    store.record(store.event(request.id, states.RECEIVED, attempts.number(context), at, **meta))


class _HeldReceipts:
    """Receipts held back for ``RECEIVED_AFTER``, oldest first."""

    def __init__(self) -> None:
        # In order of arrival, so the due ones are at the left; append and popleft
        # are atomic, so neither side takes a lock.
        self._held: collections.deque[tuple[float, Any]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def hold(self, request: Any) -> None:
        self._held.append((time.time(), request))
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    self._thread = start_daemon(self._run, "tasktrail-received")

    def _run(self) -> None:
        from celery.worker import state as worker_state

        while True:
            delay = conf.get().RECEIVED_AFTER.total_seconds()
            time.sleep(delay)
            cutoff = time.time() - delay
            while self._held and self._held[0][0] <= cutoff:
                at, request = self._held.popleft()
                # Still known to the worker and not yet handed to a pool process.
                if request.id in worker_state.requests and request.time_start is None:
                    waited = timedelta(seconds=time.time() - at)
                    _record(request, timezone.now() - waited)


_held = _HeldReceipts()
