"""Turn what Celery tells us (messages, requests, outcomes) into store events.

The event builders, one per thing Celery reports. What they rely on has a module of its
own: attempt numbers (:mod:`.attempts`), error text (:mod:`.errors`), held receipts
(:mod:`.received`), and what of a payload is stored (:mod:`tasktrail.payload`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from celery.exceptions import InvalidTaskError
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone

from .. import conf, jsoncodec, options, owner, payload, states, store
from . import attempts, errors, progress

logger = logging.getLogger("tasktrail.celery")


def expires_after(state: str, app: Any, task_name: str | None) -> timedelta | None:
    """How long a task ending in ``state`` is kept; ``None`` while it is not done.

    A task may set its own: ``@shared_task(tasktrail_result_expires=3600,
    tasktrail_failure_expires=timedelta(days=30))``.
    """
    if not states.is_done(state):
        return None
    return _expiry(app, state == states.SUCCESS, task_name)


@functools.cache
def _expiry(app: Any, succeeded: bool, task_name: str | None) -> timedelta | None:
    # Cached: reading Celery's configuration costs more than the rest of an outcome.
    task = app.tasks.get(task_name) if task_name else None
    option = options.RESULT_EXPIRES if succeeded else options.FAILURE_EXPIRES
    return conf.expires_after(
        succeeded,
        app.conf.get("result_expires"),
        app.conf.get("result_failure_expires"),
        getattr(task, option, None),
    )


@receiver(setting_changed)
def _forget_expiry(**_: Any) -> None:
    _expiry.cache_clear()


def _celerys_rule() -> Callable[[Any, Any], Any] | None:
    """Celery's own ``get_actual_ignore_result`` (in celery.app.task since 5.7, in
    celery.app.trace in 5.6), or ``None`` on Celery 5.5, which has none."""
    for module in ("celery.app.task", "celery.app.trace"):
        rule = getattr(importlib.import_module(module), "get_actual_ignore_result", None)
        if rule is not None:
            return cast("Callable[[Any, Any], Any]", rule)
    return None


_CELERYS_RULE = _celerys_rule()


def ignores_result(task: Any, request: Any) -> bool:
    """Whether Celery ignores this run's result, by the installed Celery's own rule: it
    decides whether the backend stores the outcome, so the signals that record the rest
    must agree with it exactly, or an outcome is recorded twice or never.

    Celery 5.6 and later: the request's ``ignore_result`` when the sender set one, else
    the task's (``send_task`` sets none, so reading the request alone misses a task
    declared ``ignore_result=True``). Celery 5.5: either one, since its worker publishes
    no result for a task declared ``ignore_result=True`` whatever the request says, and
    its backend stores none for a request that says so.
    """
    if _CELERYS_RULE is not None:
        return bool(_CELERYS_RULE(task, request))
    return bool(getattr(task, "ignore_result", False) or getattr(request, "ignore_result", False))


def _queue(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


def _parent(request: Any) -> str:
    """The task that sent this one. Celery sends a retry from inside the task, so the
    retry's message names the task as its own parent: that is no parent."""
    parent = getattr(request, "parent_id", None) or ""
    return "" if parent == getattr(request, "id", None) else str(parent)


def recorded_as(carrier: Any) -> dict[str, Any]:
    """What a message asks to be recorded as (:data:`tasktrail.options.RECORD_AS_HEADER`):
    ``{}``, or a dict with the task ``name`` to record (and its ``max_retries``, if
    known). ``carrier`` is the message's headers (a dict) or the worker's request, which
    carries headers as attributes."""
    if isinstance(carrier, dict):
        found = carrier.get(options.RECORD_AS_HEADER)
    else:
        found = getattr(carrier, options.RECORD_AS_HEADER, None)
        if found is None and isinstance(getattr(carrier, "headers", None), dict):
            # An eager run (task_always_eager) keeps headers in request.headers.
            found = carrier.headers.get(options.RECORD_AS_HEADER)
    return found if isinstance(found, dict) and isinstance(found.get("name"), str) else {}


def request_meta(request: Any, arguments: bool = False) -> dict[str, Any]:
    """What a worker-side event knows about the task, so it can create the record.

    Arguments are encoded only when asked: STARTED carries them (in case the
    publish-side write was lost); later events need not encode them again.
    """
    if request is None:
        return {}
    owner_id = getattr(request, owner.HEADER, None)
    meta = {
        "name": recorded_as(request).get("name") or getattr(request, "task", None) or "",
        "queue": _queue(request),
        "parent_id": _parent(request),
        "root_id": getattr(request, "root_id", None) or "",
        "group_id": getattr(request, "group", None) or "",
        "owner_id": owner_id,
        "worker": getattr(request, "hostname", None) or "",
    }
    if arguments:
        meta["args"] = payload.args_json(getattr(request, "args", None))
        meta["kwargs"] = payload.kwargs_json(getattr(request, "kwargs", None))
    return meta


def published(
    headers: dict[str, Any],
    body: Any,
    routing_key: str,
    max_retries: Any,
    show_result: str = options.UNKNOWN,
) -> None:
    """Record ``PENDING`` for a message just sent; ``show_result`` is
    :func:`tasktrail.options.show_result` of the task, as this process knows it."""
    if headers.get("retries"):
        # Celery re-publishes a retried task under the same id; the RETRY event
        # that follows describes it better than a new PENDING would.
        return
    task_id = headers.get("id")
    if not task_id:
        return
    args, kwargs = (
        (body[0], body[1]) if isinstance(body, list | tuple) and len(body) >= 2 else ((), {})
    )
    now = _sending_at.pop(task_id, None) or timezone.now()
    ignored = headers.get("ignore_result")
    record_as = recorded_as(headers)
    if "max_retries" in record_as:
        # The sender's Celery task (a runner) does not know the limit of what it runs.
        max_retries = record_as["max_retries"]
    store.record(
        store.event(
            task_id,
            states.PENDING,
            1,
            now,
            name=record_as.get("name") or headers.get("task") or "",
            queue=routing_key or "",
            args=payload.args_json(list(args)),
            kwargs=payload.kwargs_json(kwargs),
            parent_id=headers.get("parent_id") or "",
            root_id=headers.get("root_id") or "",
            group_id=headers.get("group") or "",
            owner_id=headers.get(owner.HEADER),
            max_retries=max_retries if isinstance(max_retries, int) else None,
            # None (send_task without it): the worker, which knows the task, says.
            ignore_result=ignored if isinstance(ignored, bool) else None,
            sent_at=now,
            show_result=show_result,
        ),
        record_as or None,
    )


def started(task: Any, task_id: str) -> None:
    request = task.request
    if (request.delivery_info or {}).get("redelivered"):
        attempts.count_rerun(request, task_id)
    now = timezone.now()
    progress.begin(task_id, attempts.number(request))
    store.record(
        store.event(
            task_id,
            states.STARTED,
            attempts.number(request),
            now,
            **request_meta(request, arguments=True),
            max_retries=task.max_retries if isinstance(task.max_retries, int) else None,
            ignore_result=ignores_result(task, request),
            worker_pid=os.getpid(),
            started_at=now,
            # The worker always has the task registered: a task sent by name from a
            # process that never imported it gets its option recorded here.
            show_result=options.show_result(task),
        ),
        _started_detail(request),
    )


def _started_detail(request: Any) -> dict[str, Any]:
    """The pid, and when a delayed attempt became due (its ``eta``: a retry's
    countdown, an ``apply_async(countdown=)``), from which its queue wait counts."""
    detail: dict[str, Any] = {"pid": os.getpid()}
    eta = getattr(request, "eta", None)
    if isinstance(eta, datetime):
        eta = eta.isoformat()
    if isinstance(eta, str) and eta:
        detail["due"] = eta
    return detail


def _progress_fields(meta: Any) -> dict[str, Any]:
    """celery-progress's convention: ``update_state(meta={"current": .., "total": ..})``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("current"), int | float):
        return {}
    total = meta.get("total")
    return {
        "progress_current": float(meta["current"]),
        "progress_total": float(total) if isinstance(total, int | float) else None,
        "progress_message": payload.message(
            str(meta.get("description") or meta.get("message") or "")
        ),
    }


def outcome(
    task_id: str,
    state: str,
    value: Any,
    encoded: Any,
    traceback: str | None,
    request: Any,
    expires_after: timedelta | None,
    children: list[Any] | None = None,
) -> None:
    """Record a state Celery stored through the result backend (or a signal).

    ``value`` is what the task produced (an exception for failure states);
    ``encoded`` is Celery's JSON-ready form of it, kept for ``AsyncResult``.
    """
    states.validate(state)
    fields: dict[str, Any] = request_meta(request)
    if state in states.EXCEPTION_STATES:
        encoded = payload.exception(encoded)
    fields["result"] = payload.result_json(task_id, encoded)
    if children:
        fields["children"] = jsoncodec.dumps(children)
    _record_outcome(
        task_id, state, attempts.number(request), value, traceback, request, expires_after, fields
    )


def settled(
    app: Any,
    task_id: str,
    task_name: str,
    state: str,
    exc: BaseException,
    attempt: int,
    **fields: Any,
) -> None:
    """Record an outcome decided away from the task's worker: a lost worker, a revoke.

    ``attempt`` is 0 when unknown. ``result`` holds the exception as Celery encodes it,
    so ``AsyncResult.get()`` raises it.
    """
    fields["result"] = payload.result_json(task_id, app.backend.prepare_exception(exc, "json"))
    expires = expires_after(state, app, task_name)
    _record_outcome(task_id, state, attempt, exc, None, None, expires, fields)


def rejected(app: Any, message: Any, exc: BaseException | None, hostname: str) -> None:
    """A message the worker refused (malformed, disallowed content): ``FAILURE`` if it has an id.

    Celery logs and drops such a message; without this the sender's ``PENDING`` would
    stay forever.
    """
    headers = getattr(message, "headers", None)
    if not isinstance(headers, dict):
        return
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id:
        return
    name = headers.get("task")
    name = name if isinstance(name, str) else ""
    error = exc or InvalidTaskError("unknown message format")
    retries = headers.get("retries")
    attempt = retries + 1 if isinstance(retries, int) else 0
    settled(app, task_id, name, states.FAILURE, error, attempt, name=name, worker=hostname)


#: When this process sent each task's retry: the moment the attempt ended. Celery reports
#: the retry (``mark_as_retry``, ``task_retry``) only after sending it, when the next
#: attempt may already have started in another process.
_retry_sent: dict[str, datetime] = {}
_RETRY_SENT_MAX = 10_000


#: When this process began publishing each task: its ``sent_at``, taken before the
#: message reaches the broker, so a worker that starts it at once never starts it
#: "before" it was sent (seen: 18 of 3,446 tasks, by up to 3.45 ms, when stamped after).
_sending_at: dict[str, datetime] = {}


def sending(headers: dict[str, Any]) -> None:
    """``before_task_publish``: stamp the moment the task is sent (or its retry)."""
    task_id = headers.get("id")
    if not isinstance(task_id, str):
        return
    stamps = _retry_sent if headers.get("retries") else _sending_at
    if len(stamps) >= _RETRY_SENT_MAX:
        # Only publishes whose report never came (the send failed) are left.
        stamps.clear()
    stamps[task_id] = timezone.now()


def _record_outcome(
    task_id: str,
    state: str,
    attempt: int,
    value: Any,
    traceback: str | None,
    request: Any,
    expires_after: timedelta | None,
    fields: dict[str, Any],
) -> None:
    now = _retry_sent.get(task_id) if state == states.RETRY else None
    now = now or timezone.now()
    detail: dict[str, Any] | None = None
    if isinstance(value, BaseException) or state in states.EXCEPTION_STATES:
        exc = value if isinstance(value, BaseException) else None
        fields.update(errors.fields(exc, traceback, request))
        if exc is not None:
            # The history keeps each attempt's error; the row keeps only the last.
            detail = {k: fields[k] for k in errors.FIELDS}
    else:
        fields.update(_progress_fields(value))
    if states.is_done(state):
        fields["finished_at"] = now
        if expires_after is not None:
            fields["expires_at"] = now + expires_after
    # Progress still coalescing goes first, so the outcome is the last word.
    progress.drain(task_id, before=now)
    store.record(store.event(task_id, state, attempt, now, **fields), detail)


def retry_scheduled(request: Any, when: datetime | float | None) -> None:
    """The retry signal adds what the RETRY result lacks: when the next attempt runs."""
    now = _retry_sent.pop(request.id, None) or timezone.now()
    if isinstance(when, int | float):
        when = now + timedelta(seconds=when)
    elif isinstance(when, datetime) and timezone.is_naive(when):
        when = timezone.make_aware(when, timezone.get_current_timezone())
    if when is None:
        return
    store.record(
        store.event(request.id, states.RETRY, attempts.number(request), now, next_retry_at=when),
        {"next_retry_at": when.isoformat()},
    )
