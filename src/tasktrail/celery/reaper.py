"""What becomes of a task whose worker went silent, stopped, or restarted under it.

Runs in one worker at a time (see :mod:`tasktrail.celery.upkeep`). Each orphan ends one
of three ways, decided from the task as this worker has it registered:

- ``acks_late``: its message was never acknowledged, so the broker delivers it again.
  The record says ``RETRY`` until the new run starts as the next attempt.
- ``retry_on_worker_lost`` (Celery 5.7): sent again as the next attempt, as Celery does
  when one pool process dies, if its stored arguments are complete and retries remain.
- otherwise ``LOST``, with the reason. A real outcome reported later (the worker was only
  slow) replaces ``LOST``.

The check acts only on what it read promptly: a read of the heartbeats held up by an
outage describes a fleet that had no way to heartbeat meanwhile (see :class:`Stalled`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.exceptions import WorkerLostError
from django.utils import timezone

from .. import owner, payload, states, store
from ..store import workers
from ..store.workers import MainProcess, Orphan
from . import recorder

logger = logging.getLogger("tasktrail.celery")


class Stalled(Exception):
    """The check's read of the heartbeats came back too late to act on.

    If the database stalled for this process, it may have stalled for every worker, and
    their heartbeats are as old as the stall; each will write one within an interval.
    """


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def reason(orphan: Orphan) -> str:
    who = f"worker {orphan.worker} (pid {orphan.worker_main_pid})"
    if orphan.restarted:
        return (
            f"{who} restarted at {_at(orphan.worker_started_at)}; the task was running in "
            f"its previous run (pool process pid {orphan.worker_pid})"
        )
    if orphan.stopped_at is not None:
        return f"{who} stopped at {_at(orphan.stopped_at)} while the task was running"
    return f"{who} stopped heartbeating at {_at(orphan.last_seen)}"


# Tasks this process sent again, in case their RETRY has not reached the database by
# the next check: sending one twice would run it twice.
_resent: OrderedDict[tuple[str, int], None] = OrderedDict()
_RESENT_KEPT = 10_000


def _resend(app: Any, task: Any, orphan: Orphan) -> float | str:
    """Send the task again as the next attempt; the countdown, or why it cannot be."""
    if not payload.arguments_intact(orphan.args, orphan.kwargs):
        return "its arguments were not stored in full (capped or redacted), so it is not sent again"
    limit = task.max_retries
    if isinstance(limit, int) and orphan.attempt > limit:
        return f"no retries left (max_retries={limit})"
    countdown = float(task.default_retry_delay or 0)
    app.send_task(
        orphan.name,
        orphan.args,
        orphan.kwargs,
        task_id=orphan.task_id,
        # Celery numbers attempts by retries: this one is the next.
        retries=orphan.attempt,
        countdown=countdown,
        queue=orphan.queue or None,
        headers={} if orphan.owner_id is None else {owner.HEADER: orphan.owner_id},
        parent_id=orphan.parent_id or None,
        root_id=orphan.root_id or None,
        group_id=orphan.group_id or None,
    )
    _resent[orphan.task_id, orphan.attempt] = None
    if len(_resent) > _RESENT_KEPT:
        _resent.popitem(last=False)
    return countdown


def _settle(app: Any, orphan: Orphan, now: datetime) -> None:
    if (orphan.task_id, orphan.attempt) in _resent:
        return
    task = app.tasks.get(orphan.name)
    why = reason(orphan)
    if task is not None and task.acks_late:
        error = WorkerLostError(f"{why}; the broker will deliver the task again (acks_late)")
        recorder.settled(app, orphan.task_id, orphan.name, states.RETRY, error, orphan.attempt)
        return
    if task is not None and getattr(task, "retry_on_worker_lost", False):
        sent = _resend(app, task, orphan)
        if isinstance(sent, float):
            error = WorkerLostError(
                f"{why}; sent again as attempt {orphan.attempt + 1} (retry_on_worker_lost)"
            )
            recorder.settled(
                app,
                orphan.task_id,
                orphan.name,
                states.RETRY,
                error,
                orphan.attempt,
                next_retry_at=now + timedelta(seconds=sent),
            )
            return
        why = f"{why}; {sent}"
    recorder.settled(
        app, orphan.task_id, orphan.name, states.LOST, WorkerLostError(why), orphan.attempt
    )


def reap(app: Any, checker: MainProcess | None = None, read_by: float | None = None) -> int:
    """Settle the tasks of workers that are gone; return how many.

    ``checker``: the main process running the check, never judged silent itself.
    ``read_by``: a ``time.monotonic()`` deadline for reading the orphans; a read that
    returns later raises :class:`Stalled` and settles nothing.
    """
    found = workers.orphans(checker)
    if read_by is not None and time.monotonic() > read_by:
        raise Stalled(f"reading {len(found)} orphan(s) took past the deadline")
    now = timezone.now()
    for orphan in found:
        try:
            _settle(app, orphan, now)
        except Exception:
            # Most likely the broker is down while re-sending: try again next time.
            logger.exception("tasktrail: could not settle task %s", orphan.task_id)
    if found:
        # Written before the next check reads them, so none is settled twice.
        store.sync()
        logger.warning("tasktrail: settled %d task(s) left by gone workers", len(found))
    return len(found)
