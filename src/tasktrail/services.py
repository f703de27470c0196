"""Actions on tasks, shared by every surface (CLI, dashboard, admin): retry, revoke, cleanup.

Each action does what Celery needs done and records the outcome at once, but only
when the record would be true: see :func:`revoke`. Retries and revokes are audited in
the task's history: who did what, when (:mod:`tasktrail.store.audit`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime
from typing import Any

import celery
from celery import current_app
from celery.exceptions import TaskRevokedError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from . import conf, owner, payload, states, store
from .celery import recorder
from .records import TaskRecord
from .store import audit, expiry, revocations
from .store.expiry import Expired

logger = logging.getLogger("tasktrail.services")

__all__ = [
    "ActionRefused",
    "Expired",
    "Retried",
    "Revoked",
    "cleanup",
    "retry",
    "retryable",
    "revocable",
    "revoke",
]

#: Audit entries' action names.
RETRY = "retry"
RETRY_OF = "retry_of"
REVOKE = "revoke"
TERMINATE = "revoke_terminate"


class ActionRefused(ValueError):
    """The action cannot be done to this task; the message says why, for a person."""


@dataclasses.dataclass(frozen=True, slots=True)
class Revoked:
    """What :func:`revoke` did: the task's state now, and a sentence for a person."""

    task_id: str
    state: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Retried:
    """What :func:`retry` did: the new task's id, and a sentence for a person."""

    task_id: str
    new_task_id: str
    message: str


def _username(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return str(user.get_username())


def retryable(record: TaskRecord) -> bool:
    """Whether :func:`retry` would send ``record`` again: it finished."""
    return record.ready


def revocable(record: TaskRecord) -> bool:
    """Whether :func:`revoke` has anything to do: the task waits, runs, or is ``LOST``."""
    return not record.ready or record.state == states.LOST


def retry(task_id: str, *, user: Any = None, app: celery.Celery | None = None) -> Retried:
    """Send a finished task again, as a new task: same name, arguments and queue.

    The new task belongs to the original's owner, so whoever could follow the first
    run can follow this one. The link is kept both ways in the tasks' histories (the
    original's ``retry`` entry names the new id, the new task's ``retry_of`` entry
    the original). Raises :class:`tasktrail.TaskNotFound` for an unknown id and
    :class:`ActionRefused` for a task still waiting or running (revoke it first) or
    whose arguments were not stored in full (redacted, or over ``MAX_ARGS_BYTES``).
    """
    record = store.get(task_id)
    if not retryable(record):
        raise ActionRefused(f"still {record.state}: only a finished task can be retried")
    if not record.name:
        raise ActionRefused("its task name was never recorded")
    if not payload.arguments_intact(record.args, record.kwargs):
        raise ActionRefused("its arguments were not stored in full (redacted or too large)")
    app = app or current_app
    new_id = str(uuid.uuid4())
    with owner.owned_by(record.owner_id):
        app.send_task(
            record.name,
            args=record.args,
            kwargs=record.kwargs,
            queue=record.queue or None,
            task_id=new_id,
        )
    now, by = timezone.now(), _username(user)
    audit.add(task_id, RETRY, now, by, {"retry_id": new_id, "state": record.state})
    audit.add(new_id, RETRY_OF, now, by, {"original_id": task_id})
    return Retried(task_id, new_id, f"sent again as {new_id}")


def revoke(
    task_id: str,
    terminate: bool = False,
    signal: str = "SIGTERM",
    *,
    user: Any = None,
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
    Each revoke sent is audited in the task's history, with ``user``.
    """
    record = store.get(task_id)
    if not revocable(record):
        return Revoked(task_id, record.state, f"already {record.state}: nothing to revoke")
    app = app or current_app
    running = record.phase is states.Phase.RUNNING
    now = timezone.now()
    revocations.add(task_id, now)
    try:
        app.control.revoke(task_id, terminate=terminate, signal=signal)
    except BrokerError:
        if running:
            raise
        # The stored revocation reaches workers when they next heartbeat or start.
        logger.warning("tasktrail: broker unreachable; %s is revoked in the store only", task_id)
    detail = {"state": record.state, **({"signal": signal} if terminate else {})}
    audit.add(task_id, TERMINATE if terminate else REVOKE, now, _username(user), detail)
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
