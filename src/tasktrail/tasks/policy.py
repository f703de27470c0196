"""A django.tasks task's retry policy: tasktrail's :class:`~tasktrail.retries.RetryPolicy`,
from the backend's ``OPTIONS["RETRY"]`` (a dict like ``TASKTRAIL["RETRY"]``, which it
refines; Django 6.0's ``@task`` takes no other options), refined by the Celery options the
task sets in ``@task(...)`` on Django 6.1 (see :class:`~tasktrail.tasks.backend.CeleryTask`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import conf, retries
from ..retries import RetryPolicy


def backend_default(options: dict[str, Any]) -> RetryPolicy | None:
    """The backend's policy: ``OPTIONS["RETRY"]`` over ``TASKTRAIL["RETRY"]``;
    ``ValueError`` for a bad one."""
    project = conf.get().RETRY
    own = options.get("RETRY")
    if own is None:
        return project
    if own is False:
        return None
    return retries.parse(own, project)


def refine(
    base: RetryPolicy | None,
    max_retries: int | None,
    autoretry_for: tuple[type[BaseException], ...],
    retry_backoff: bool | float | None,
    retry_backoff_max: float | None,
    retry_jitter: bool | None,
) -> RetryPolicy | None:
    """``base`` with the task's Celery options; ``None`` when neither retries.

    As Celery's: ``max_retries`` retries after the first run; ``autoretry_for`` retries
    those exceptions; ``retry_backoff`` is the first wait in seconds (``True``: 1),
    doubling to ``retry_backoff_max``, with full jitter unless ``retry_jitter=False``.
    """
    changes: dict[str, Any] = {}
    if max_retries is not None:
        changes["max_attempts"] = max_retries + 1
    if autoretry_for:
        changes["retry_on"] = tuple(autoretry_for)
    if retry_backoff is not None and retry_backoff is not False:
        changes["backoff"] = 1.0 if retry_backoff is True else float(retry_backoff)
    if retry_backoff_max is not None:
        changes["backoff_max"] = float(retry_backoff_max)
    if retry_jitter is not None:
        changes["jitter"] = retry_jitter
    if not changes:
        return base
    return dataclasses.replace(base or RetryPolicy(), **changes)


def limit(found: RetryPolicy | None) -> int | None:
    """The retry limit to record: none for a policy that retries no exception (a
    django.tasks task has no ``self.retry()``), ``None`` for no limit."""
    return found.max_retries if found is not None and found.retry_on else 0


def of(task: Any) -> RetryPolicy | None:
    """The policy of a django.tasks ``Task`` (a :class:`CeleryTask` or a plain one)."""
    from django.tasks import task_backends

    base = backend_default(task_backends[task.backend].options)
    return refine(
        base,
        getattr(task, "max_retries", None),
        tuple(getattr(task, "autoretry_for", ()) or ()),
        getattr(task, "retry_backoff", None),
        getattr(task, "retry_backoff_max", None),
        getattr(task, "retry_jitter", None),
    )
