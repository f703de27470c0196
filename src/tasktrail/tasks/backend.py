"""django.tasks' backend on Celery: ``TASKS = {"default": {"BACKEND":
"tasktrail.tasks.CeleryBackend"}}``. Tasks go to Celery through the one runner task
(:mod:`tasktrail.tasks.runner`); results are read from tasktrail's store."""

from __future__ import annotations

import dataclasses
import functools
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypeVar

from django.db import DatabaseError
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.signals import task_enqueued
from django.utils import timezone

from .. import options, store
from ..exceptions import TaskNotFound
from . import mapping, policy, results, runner

if TYPE_CHECKING:
    from .results import AnyResult, AnyTask

logger = logging.getLogger("tasktrail.tasks")
_P = ParamSpec("_P")
_R = TypeVar("_R")
if TYPE_CHECKING:
    # Generic in django-stubs only.
    _TaskBase: TypeAlias = Task[..., Any]  # noqa: UP040  (a base class)
else:
    _TaskBase = Task

#: Django's default queue name: sent to Celery's default queue (``task_default_queue``,
#: ``"celery"`` unless set), so a worker started without ``-Q`` runs it.
DEFAULT_QUEUE = "default"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CeleryTask(_TaskBase):
    """A django.tasks ``Task`` that takes Celery's retry options (Django >= 6.1 passes
    ``@task(...)``'s other keywords here): ``@task(max_retries=3,
    autoretry_for=(ConnectionError,), retry_backoff=2)``. See :mod:`tasktrail.tasks.policy`."""

    max_retries: int | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    retry_backoff: bool | float | None = None
    retry_backoff_max: float | None = None
    retry_jitter: bool | None = None


class CeleryBackend(BaseTaskBackend):
    """Sends django.tasks tasks to Celery workers; reads their results from tasktrail.

    ``OPTIONS``: ``"RETRY"``, a default retry policy (a dict like ``TASKTRAIL["RETRY"]``,
    which it refines; ``False``: none).
    """

    task_class = CeleryTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # Refused now, not at the first retry.
        self.retry_policy = policy.backend_default(self.options)

    def validate_task(self, task: AnyTask) -> None:
        after: Any = task.run_after
        if isinstance(after, timedelta):
            # Django checks a datetime's time zone; a delay has none. The rest as Django's.
            super().validate_task(dataclasses.replace(task, run_after=None))
            return
        super().validate_task(task)

    @functools.cached_property
    def _driver_type(self) -> str:
        return str(runner.run.app.connection_for_write().transport.driver_type)

    def _celery_queue(self, queue_name: str) -> str:
        if queue_name == DEFAULT_QUEUE:
            return str(runner.run.app.conf.task_default_queue)
        return queue_name

    def enqueue(
        self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[_P, _R]:
        self.validate_task(task)
        sent = results.Sent.of(task)
        send: dict[str, Any] = {
            "queue": self._celery_queue(task.queue_name),
            "headers": {options.RECORD_AS_HEADER: sent.header()},
            # Celery's logs and monitors name the Django task, not the runner.
            "shadow": sent.name,
            "priority": mapping.broker_priority(task.priority, self._driver_type),
        }
        after: Any = task.run_after
        if after is not None:
            send["eta"] = timezone.now() + after if isinstance(after, timedelta) else after
        sent_id = runner.run.apply_async(tuple(args), dict(kwargs), **send).id
        result = self._as_sent(sent_id, task, list(args), dict(kwargs))
        task_enqueued.send(type(self), task_result=result)
        return result

    def _as_sent(
        self, task_id: str, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[_P, _R]:
        """The result as sent: ``READY``, with what the store recorded of the sending (its
        ``enqueued_at``, the arguments as stored), so ``get_result()`` equals it while the
        task waits. A worker may have started it already; ``refresh()`` tells."""
        enqueued_at = timezone.now()
        try:
            record = store.get(task_id)
        except (DatabaseError, TaskNotFound):
            logger.warning("tasktrail: cannot read %s just sent; returning what was sent", task_id)
        else:
            enqueued_at = record.sent_at or enqueued_at
            args, kwargs = results.arguments(record)
        return TaskResult(
            task=task, id=task_id, status=TaskResultStatus.READY, enqueued_at=enqueued_at,
            started_at=None, finished_at=None, last_attempted_at=None, args=args,
            kwargs=kwargs, backend=self.alias, errors=[], worker_ids=[],
        )  # fmt: skip

    def get_result(self, result_id: str) -> AnyResult:
        return results.read(result_id, self.alias)

    def check(self, **kwargs: Any) -> list[Any]:
        return []


__all__ = ["CeleryBackend", "CeleryTask"]
