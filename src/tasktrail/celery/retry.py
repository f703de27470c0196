"""Retry policies applied through Celery's own task options, in the worker.

A task's policy is ``TASKTRAIL["RETRY"]`` refined by its ``tasktrail_retry`` option
(``@shared_task(tasktrail_retry={"max_attempts": 5, "retry_on": [ConnectionError]})``;
``tasktrail_retry=False`` opts out). Celery keeps doing the retrying:

- ``max_attempts`` becomes the task's ``max_retries``;
- ``self.retry()`` called without ``countdown`` waits the policy's backoff (it becomes the
  task's ``default_retry_delay``, which Celery's ``retry_on_worker_lost`` uses too);
- an exception in ``retry_on`` calls ``self.retry(exc=...)`` for the task, as Celery's
  ``autoretry_for`` does, and ends in ``FAILURE`` with that exception once attempts run out.

Explicit beats default: a task that sets ``max_retries`` or ``default_retry_delay`` itself
keeps its value, and its own ``autoretry_for`` / ``retry_backoff`` keep working inside.
"""

from __future__ import annotations

import functools
from typing import Any

import celery
from celery.exceptions import Ignore, Reject, Retry

from .. import conf, options, retries
from ..retries import RetryPolicy

OPTION = options.RETRY
_APPLIED = "_tasktrail_retry_applied"
_PARSED = "_tasktrail_retry_policy"


def policy_for(task: Any) -> RetryPolicy | None:
    own = getattr(task, OPTION, None)
    settings = conf.get()
    if own is False:
        return None
    if own is None:
        return settings.RETRY
    # Parsed once per task (and settings), since publishing asks for every message.
    cached = task.__dict__.get(_PARSED)
    if cached is None or cached[0] is not settings:
        cached = (settings, retries.parse(own, settings.RETRY))
        setattr(task, _PARSED, cached)
    policy: RetryPolicy = cached[1]
    return policy


def _explicit(task: Any, name: str) -> bool:
    """Whether the task (or a base class of the project's) sets ``name`` itself."""
    for klass in type(task).__mro__:
        if klass.__module__.split(".")[0] == "celery":
            return False
        if name in vars(klass):
            return True
    return False


def max_retries(task: Any) -> int | None:
    """The task's retry limit once its policy applies; the publishing side records it."""
    policy = policy_for(task)
    if policy is None or _explicit(task, "max_retries"):
        limit = getattr(task, "max_retries", None)
        return limit if isinstance(limit, int) else None
    return policy.max_retries


class _Backoff:
    """``default_retry_delay`` that follows the policy: the wait grows with each retry."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __get__(self, task: Any, owner: type | None = None) -> float:
        retries_done = task.request.retries if task is not None else 0
        return self.policy.delay(retries_done or 0)


def _retry_on(task: Any, policy: RetryPolicy) -> None:
    run = task.run

    @functools.wraps(run)
    def retrying_run(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except (Ignore, Reject, Retry):
            raise
        except policy.retry_on as exc:
            countdown = policy.delay(task.request.retries)
            raise task.retry(exc=exc, countdown=countdown) from None

    task.run = retrying_run


def apply(app: celery.Celery) -> None:
    """Apply each task's policy; once per process, before the worker runs tasks."""
    for task in app.tasks.values():
        policy = policy_for(task)
        if policy is None or getattr(task, _APPLIED, False):
            continue
        cls = type(task)
        if not _explicit(task, "max_retries"):
            cls.max_retries = policy.max_retries
        if not _explicit(task, "default_retry_delay"):
            cls.default_retry_delay = _Backoff(policy)  # type: ignore[assignment]
        if policy.retry_on:
            _retry_on(task, policy)
        setattr(task, _APPLIED, True)
