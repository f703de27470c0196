"""Actions on tasks, shared by every surface (CLI, dashboard, admin): revoke, cleanup.

Each action does what Celery needs done and records the outcome at once, but only
when the record would be true: see :func:`revoke`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

import celery
from celery import current_app
from celery.exceptions import TaskRevokedError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from . import conf, states, store
from .celery import recorder
from .store import expiry, revocations
from .store.expiry import Expired

logger = logging.getLogger("tasktrail.services")

__all__ = ["Expired", "Revoked", "cleanup", "revoke"]


@dataclasses.dataclass(frozen=True, slots=True)
class Revoked:
    """What :func:`revoke` did: the task's state now, and a sentence for a person."""

    task_id: str
    state: str
    message: str


def revoke(
    task_id: str,
    terminate: bool = False,
    signal: str = "SIGTERM",
    *,
    app: celery.Celery | None = None,
) -> Revoked:
    """Revoke a task: Celery's revoke, and ``REVOKED`` recorded when that is the truth.

    - Waiting (or ``LOST``): ``REVOKED`` at once. Workers online drop the message when
      it reaches them; workers offline now load the revocation when they start.
    - Running, ``terminate=True``: its process gets ``signal``; ``REVOKED`` at once.
    - Running, ``terminate=False``: it runs to its end (Celery stops no running task
      unless told to), so the state stays; it will not be retried.
    - Done: nothing to do.

    Raises :class:`tasktrail.TaskNotFound` for an id that was never recorded.
    """
    record = store.get(task_id)
    if record.ready and record.state != states.LOST:
        return Revoked(task_id, record.state, f"already {record.state}: nothing to revoke")
    app = app or current_app
    running = record.phase is states.Phase.RUNNING
    revocations.add(task_id, timezone.now())
    try:
        app.control.revoke(task_id, terminate=terminate, signal=signal)
    except BrokerError:
        if running:
            raise
        # The stored revocation reaches workers when they next heartbeat or start.
        logger.warning("tasktrail: broker unreachable; %s is revoked in the store only", task_id)
    if running and not terminate:
        return Revoked(
            task_id,
            record.state,
            "revoked while running: it runs to its end and will not be retried "
            "(terminate=True stops it now)",
        )
    how = f" and terminated with {signal}" if running else ""
    reason = TaskRevokedError(f"revoked{how} while {record.state}")
    recorder.settled(app, task_id, record.name, states.REVOKED, reason, 0)
    store.sync()
    return Revoked(task_id, states.REVOKED, f"revoked{how}")


def cleanup(
    dry_run: bool = False, batch: int | None = None, *, now: datetime | None = None
) -> Expired:
    """Delete what expired by ``now`` in batches of ``batch`` tasks; with ``dry_run``, count it.

    Workers do this by themselves every ``CLEANUP_INTERVAL``; this is for on demand.
    """
    now = now or timezone.now()
    if dry_run:
        return expiry.count(now)
    return expiry.delete_expired(now, batch or conf.get().CLEANUP_BATCH)
