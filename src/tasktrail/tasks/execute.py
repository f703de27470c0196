"""What the runner does for one message, in the worker: the Django task's run, with
django.tasks' signals and context, its retry policy, and a clean failure for any
``BaseException`` but ``KeyboardInterrupt``."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore, Reject, Retry
from celery.utils.serialization import UnpickleableExceptionWrapper
from django.db import DatabaseError
from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from .. import options
from ..celery.recorder import recorded_as
from . import policy, results

if TYPE_CHECKING:
    from .results import AnyResult, AnyTask

logger = logging.getLogger("tasktrail.tasks")


class NotATask(TypeError):
    """The message names something that is not a django.tasks ``Task``."""


def _sender() -> type:
    from .backend import CeleryBackend

    return CeleryBackend


def _task(request: Any) -> AnyTask:
    sent = results.Sent.parse(recorded_as(request))
    if sent is None:
        raise NotATask(
            f"{request.task} runs django.tasks tasks only; its message has no valid "
            f"{options.RECORD_AS_HEADER} header (send it with a django.tasks task's enqueue())"
        )
    try:
        return sent.task()
    except LookupError as exc:
        raise NotATask(str(exc)) from None


def _started(task_id: str, task: AnyTask, args: Any, kwargs: Any) -> AnyResult:
    """The result as recorded at this start (STARTED, this attempt's worker and the
    earlier attempts' errors); from the message alone if the store cannot be read."""
    try:
        return results.read(task_id, task.backend)
    except (DatabaseError, TaskResultDoesNotExist):
        logger.warning("tasktrail: cannot read %s; its signals carry the message only", task_id)
        now = timezone.now()
        return TaskResult(
            task=task, id=task_id, status=TaskResultStatus.RUNNING, enqueued_at=None,
            started_at=now, finished_at=None, last_attempted_at=now, args=list(args),
            kwargs=dict(kwargs), backend=task.backend, errors=[], worker_ids=[],
        )  # fmt: skip


def _fail_cleanly(exc: BaseException) -> Exception:
    """``exc`` as an ``Exception`` Celery records as a failure of ``exc``'s own class:
    Celery's wrapper for an exception it cannot carry, whose class tasktrail records."""
    if isinstance(exc, Exception):
        return exc
    cls = type(exc)
    return UnpickleableExceptionWrapper(cls.__module__, cls.__qualname__, exc.args, repr(exc))


def run(celery_task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request = celery_task.request
    task = _task(request)
    result = _started(request.id, task, args, kwargs)
    task_started.send(_sender(), task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        # As Django's own backends: a value JSON cannot hold fails the task here, so
        # task_finished and the stored state agree.
        value = normalize_json(value)
    except KeyboardInterrupt:
        raise
    except (Ignore, Reject, Retry):
        raise
    except BaseException as exc:
        found = policy.of(task)
        retries = request.retries or 0
        if (
            found is not None
            and isinstance(exc, found.retry_on)
            and (found.max_retries is None or retries < found.max_retries)
        ):
            # Not finished: READY again until the next attempt starts.
            raise celery_task.retry(
                exc=_fail_cleanly(exc),
                countdown=found.delay(retries),
                max_retries=found.max_retries,
                headers={options.RECORD_AS_HEADER: recorded_as(request)},
            ) from None
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        object.__setattr__(result, "finished_at", timezone.now())
        cls = type(exc)
        result.errors.append(
            TaskError(
                exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        task_finished.send(_sender(), task_result=result)
        if isinstance(exc, Exception):
            raise
        raise _fail_cleanly(exc) from exc
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "_return_value", value)
    task_finished.send(_sender(), task_result=result)
    return value
