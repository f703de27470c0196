"""The one Celery task that runs every django.tasks task: ``tasktrail.tasks.run``.

The message carries the Django task's arguments as its own and the Django task in the
``tasktrail_record_as`` header (:class:`~tasktrail.tasks.results.Sent`), so tasktrail
records the user's task name and arguments, not this runner's. The runner imports the
task by its path and runs nothing that is not a django.tasks ``Task``; it sends
django.tasks' ``task_started`` and ``task_finished`` (from inside the ``except`` block,
as Django's own backends do), retries as the task's policy says, and turns a
``BaseException`` other than ``KeyboardInterrupt`` (a ``SystemExit``) into a failure:
Celery lets those through, which would end the pool process and lose the task.

Importing this module registers the task and imports nothing of Django 6, so the app
can import it on Django 5.2 too; the task itself needs django.tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import celery
from celery import shared_task

from ..celery.recorder import recorded_as

NAME = "tasktrail.tasks.run"


class _MaxRetries:
    """The running Django task's retry limit, as its message carries it, for what
    tasktrail records at its start and Celery's ``retry()`` reads (``None`` outside a run
    of the runner: unknown)."""

    def __get__(self, task: Any, owner: type | None = None) -> int | None:
        if task is None:
            return None
        limit = recorded_as(task.request).get("max_retries")
        return limit if isinstance(limit, int) else None


# celery-types makes Task generic; Celery itself is subscriptable only from 5.6 (on 5.5,
# ``celery.Task[Any, Any]`` raised TypeError when the app loaded: the version matrix).
if TYPE_CHECKING:
    _RunnerBase = celery.Task[Any, Any]
else:
    _RunnerBase = celery.Task


class Runner(_RunnerBase):
    max_retries = _MaxRetries()


@shared_task(
    bind=True,
    base=Runner,
    name=NAME,
    # The Django task's own policy applies (tasktrail.tasks.policy), not RETRY's.
    tasktrail_retry=False,
)
def run(self: Any, *args: Any, **kwargs: Any) -> Any:
    from . import execute

    return execute.run(self, args, kwargs)
