"""Who may see a task, and what of it: the one rule every surface applies.

A task is visible to the user who sent it, to staff and holders of
``TASKTRAIL["VIEW_PERMISSION"]``, and to whoever holds a signed, unexpired link to it
(:func:`sign`, for anonymous flows). To everyone else it does not exist: lookups raise
:class:`~tasktrail.TaskNotFound`, exactly as for an unknown id, so ids cannot be probed.

What a viewer sees (:func:`snapshot`): state, phase, progress, timestamps, attempt; the
result and the error summary unless the task hides them from non-staff
(``@shared_task(tasktrail_show_result=False)``, default ``TASKTRAIL["SHOW_RESULT"]``);
tracebacks and arguments only for staff.
"""

from __future__ import annotations

import enum
import time
from datetime import datetime, timedelta
from typing import Any

from django.core import signing

from . import conf, notify, states, store
from .exceptions import TaskNotFound
from .records import TaskRecord

_SALT = "tasktrail.link"
#: Acting on tasks (retry, revoke) on the dashboard and in the admin needs this.
ACTION_PERMISSION = "tasktrail.change_task"


class Level(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    STAFF = 2


def sign(task_id: str, expires: timedelta | None = None) -> str:
    """A token granting a view of ``task_id`` until ``expires`` from now."""
    lifetime = expires if expires is not None else conf.get().LINK_EXPIRES
    return signing.dumps([task_id, int(time.time() + lifetime.total_seconds())], salt=_SALT)


def _link_grants(token: str, task_id: str) -> bool:
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return False
    match value:
        case [str() as granted, int() as deadline]:
            return granted == task_id and time.time() < deadline
    return False


def _is_staff(user: Any) -> bool:
    return bool(user.is_active and (user.is_staff or user.is_superuser))


def _sees_all(user: Any) -> bool:
    permission = conf.get().VIEW_PERMISSION
    return bool(user is not None and permission and user.has_perm(permission))


def operator(user: Any) -> Level:
    """What ``user`` may see of *every* task, as on the dashboard: staff see it all,
    holders of ``VIEW_PERMISSION`` what owners see; anyone else, nothing."""
    if user is None or not user.is_authenticated:
        return Level.NONE
    if _is_staff(user):
        return Level.STAFF
    return Level.VIEWER if _sees_all(user) else Level.NONE


def may_act(user: Any) -> bool:
    """Whether ``user`` may retry and revoke any task they can see."""
    return bool(
        operator(user) is not Level.NONE and user.is_active and user.has_perm(ACTION_PERMISSION)
    )


def level(record: TaskRecord, user: Any, token: str | None = None) -> Level:
    """What ``user`` (or the holder of ``token``) may see of ``record``."""
    if user is not None and user.is_authenticated:
        if _is_staff(user):
            return Level.STAFF
        if record.owner_id is not None and str(record.owner_id) == str(user.pk):
            return Level.VIEWER
    if token and _link_grants(token, record.id):
        return Level.VIEWER
    return Level.VIEWER if _sees_all(user) else Level.NONE


def lookup(task_id: str, user: Any, token: str | None = None) -> tuple[TaskRecord, Level]:
    """The record and what ``user`` may see; :class:`TaskNotFound` if unknown *or* hidden."""
    record = store.get(task_id)
    allowed = level(record, user, token)
    if allowed is Level.NONE:
        raise TaskNotFound(task_id)
    return record, allowed


def _shows_outcome(record: TaskRecord) -> bool:
    from celery import current_app

    task = current_app.tasks.get(record.name) if record.name else None
    option = getattr(task, "tasktrail_show_result", None)
    return conf.get().SHOW_RESULT if option is None else bool(option)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def snapshot(record: TaskRecord, allowed: Level) -> dict[str, Any]:
    """The task as ``allowed`` may see it, ready for JSON."""
    data: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "state": record.state,
        "phase": str(record.phase),
        "ready": record.ready,
        "attempt": record.attempt,
        "retries_left": record.retries_left,
        "progress": record.progress and record.progress.as_json(),
        "sent_at": _iso(record.sent_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "updated_at": _iso(record.updated_at),
        "next_retry_at": _iso(record.next_retry_at),
        "version": notify.version(record),
    }
    if allowed is Level.STAFF or _shows_outcome(record):
        if record.state == states.SUCCESS:
            data["result"] = record.result
        if record.error is not None:
            data["error"] = {"type": record.error.type, "message": record.error.message}
    if allowed is Level.STAFF:
        if record.error is not None:
            data["error"]["traceback"] = record.error.traceback
        data.update(args=record.args, kwargs=record.kwargs, worker=record.worker)
    return data
