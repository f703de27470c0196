"""Turn what Celery tells us (messages, requests, outcomes) into store events."""

from __future__ import annotations

import collections
import functools
import logging
import os
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import (
    InvalidTaskError,
    NotRegistered,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
)
from celery.utils.serialization import UnpickleableExceptionWrapper
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver
from django.utils import timezone
from kombu.exceptions import DecodeError, EncodeError

from .. import conf, jsoncodec, options, owner, states, store
from ..exceptions import TaskNotFound
from ..threads import start_daemon
from . import progress

logger = logging.getLogger("tasktrail.celery")

REDACTED = "[redacted]"
OMITTED = "tasktrail_omitted"
#: Message header counting the runs Celery did not count as retries (re-deliveries of
#: the same message), so attempt numbers keep growing; retries carry it along.
RERUNS = options.RERUNS_HEADER


def _attempt(request: Any) -> int:
    retries = getattr(request, "retries", None)
    if not isinstance(retries, int):
        return 0
    reruns = getattr(request, RERUNS, None)
    return retries + 1 + (reruns if isinstance(reruns, int) else 0)


def _args_json(value: Any) -> str | None:
    """Arguments as capped JSON: too large or not JSON becomes a marker, never an error."""
    if value is None:
        return None
    limit = conf.get().MAX_ARGS_BYTES
    try:
        text = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        return jsoncodec.dumps({OMITTED: f"not JSON: {exc}"})
    if len(text) > limit:
        return jsoncodec.dumps({OMITTED: f"{len(text)} bytes, over MAX_ARGS_BYTES ({limit})"})
    return text


def _kwargs_json(kwargs: Any) -> str | None:
    if not isinstance(kwargs, dict):
        return _args_json(kwargs)
    hidden = conf.get().REDACT_KWARGS
    return _args_json({k: REDACTED if k in hidden else v for k, v in kwargs.items()})


def arguments_intact(args: Any, kwargs: Any) -> bool:
    """Whether stored arguments are the ones sent (not capped, not redacted)."""
    if not isinstance(args, list) or not isinstance(kwargs, dict) or OMITTED in kwargs:
        return False
    hidden = conf.get().REDACT_KWARGS
    return not any(kwargs[k] == REDACTED for k in hidden & kwargs.keys())


def result_json(task_id: str, value: Any) -> str:
    """A result as JSON, or :class:`kombu.exceptions.EncodeError` with the reason.

    Celery turns an ``EncodeError`` raised while storing a result into the task's
    ``FAILURE``, so the user sees why instead of a lost result.
    """
    try:
        text = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        raise EncodeError(
            f"result of task {task_id} is not JSON-serialisable ({exc}); tasktrail stores "
            "JSON only: return dicts, lists, strings, numbers, booleans or None"
        ) from None
    limit = conf.get().MAX_RESULT_BYTES
    if len(text) > limit:
        raise EncodeError(
            f"result of task {task_id} is {len(text)} bytes of JSON, over "
            f"TASKTRAIL['MAX_RESULT_BYTES'] ({limit})"
        )
    return text


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


def _queue(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


def _request_meta(request: Any, arguments: bool = False) -> dict[str, Any]:
    """What a worker-side event knows about the task, so it can create the record.

    Arguments are encoded only when asked: STARTED carries them (in case the
    publish-side write was lost); later events need not encode them again.
    """
    if request is None:
        return {}
    owner_id = getattr(request, owner.HEADER, None)
    meta = {
        "name": getattr(request, "task", None) or "",
        "queue": _queue(request),
        "parent_id": getattr(request, "parent_id", None) or "",
        "root_id": getattr(request, "root_id", None) or "",
        "group_id": getattr(request, "group", None) or "",
        "owner_id": owner_id,
        "worker": getattr(request, "hostname", None) or "",
    }
    if arguments:
        meta["args"] = _args_json(getattr(request, "args", None))
        meta["kwargs"] = _kwargs_json(getattr(request, "kwargs", None))
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
    now = timezone.now()
    store.record(
        store.event(
            task_id,
            states.PENDING,
            1,
            now,
            name=headers.get("task") or "",
            queue=routing_key or "",
            args=_args_json(list(args)),
            kwargs=_kwargs_json(kwargs),
            parent_id=headers.get("parent_id") or "",
            root_id=headers.get("root_id") or "",
            group_id=headers.get("group") or "",
            owner_id=headers.get(owner.HEADER),
            max_retries=max_retries if isinstance(max_retries, int) else None,
            sent_at=now,
            show_result=show_result,
        )
    )


def received(request: Any) -> None:
    """``request`` is the worker's ``Request``; its context carries the message headers.

    Runs in the worker's main process, the pool's only dispatcher, for every task: the
    common case (no ETA) costs a deque append.
    """
    if not request.eta:
        _held.hold(request)
        return
    if _attempt(request._context) > 1:
        # A retry held for its countdown: RETRY with its next_retry_at says more
        # than RECEIVED would, so the record keeps it until the attempt starts.
        return
    _record_received(request, timezone.now())


def _record_received(request: Any, at: datetime) -> None:
    context = request._context
    meta = _request_meta(context)
    meta.update(name=request.name or meta["name"], received_at=at)
    store.record(store.event(request.id, states.RECEIVED, _attempt(context), at, **meta))


class _HeldReceipts:
    """RECEIVED events held back in the worker's main process for ``RECEIVED_AFTER``.

    Most tasks start within milliseconds of being received, and their STARTED makes
    a RECEIVED redundant; writing one anyway costs the main process CPU on every task.
    A task still waiting after the delay, in the prefetch buffer behind busy pool
    processes, gets its RECEIVED with the time it was really received.
    """

    def __init__(self) -> None:
        # In order of arrival, so the due ones are at the left; append and popleft
        # are atomic, so neither side takes a lock.
        self._held: collections.deque[tuple[float, Any]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def hold(self, request: Any) -> None:
        self._held.append((time.time(), request))
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    self._thread = start_daemon(self._run, "tasktrail-received")

    def _run(self) -> None:
        from celery.worker import state as worker_state

        while True:
            delay = conf.get().RECEIVED_AFTER.total_seconds()
            time.sleep(delay)
            cutoff = time.time() - delay
            while self._held and self._held[0][0] <= cutoff:
                at, request = self._held.popleft()
                # Still known to the worker and not yet handed to a pool process.
                if request.id in worker_state.requests and request.time_start is None:
                    waited = timedelta(seconds=time.time() - at)
                    _record_received(request, timezone.now() - waited)


_held = _HeldReceipts()


def started(task: Any, task_id: str) -> None:
    request = task.request
    if (request.delivery_info or {}).get("redelivered"):
        _count_rerun(request, task_id)
    now = timezone.now()
    progress.begin(task_id, _attempt(request))
    store.record(
        store.event(
            task_id,
            states.STARTED,
            _attempt(request),
            now,
            **_request_meta(request, arguments=True),
            max_retries=task.max_retries if isinstance(task.max_retries, int) else None,
            worker_pid=os.getpid(),
            started_at=now,
            # The worker always has the task registered: a task sent by name from a
            # process that never imported it gets its option recorded here.
            show_result=options.show_result(task),
        ),
        {"pid": os.getpid()},
    )


def _count_rerun(request: Any, task_id: str) -> None:
    """Number a re-delivered message's run as a new attempt if an earlier run began.

    The broker delivers a message again when its worker died before acknowledging it
    (``acks_late``); Celery runs it under the same retry count, so tasktrail counts
    the extra run itself, in a header that later retries carry along.
    """
    try:
        stored = store.get(task_id)
    except TaskNotFound:
        return
    except DatabaseError:
        logger.warning("tasktrail: cannot read %s to number its re-run", task_id, exc_info=True)
        return
    if states.is_done(stored.state) and stored.state != states.LOST:
        return
    if states.order(stored.state, stored.attempt) < states.order(states.STARTED, _attempt(request)):
        return
    reruns = stored.attempt - request.retries
    setattr(request, RERUNS, reruns)
    request.headers = {**(request.headers or {}), RERUNS: reruns}


def _seconds(value: Any) -> str:
    return f" ({value:g} s)" if isinstance(value, int | float) else ""


def _describe(exc: BaseException, request: Any) -> str:
    """The error message a user reads; Celery's own say little for these."""
    if isinstance(exc, TimeLimitExceeded):
        limit = _seconds(exc.args[0] if exc.args else None)
        return f"hard time limit{limit} exceeded: the worker killed the process running the task"
    if isinstance(exc, SoftTimeLimitExceeded):
        limits = getattr(request, "timelimit", None) or (None, None)
        return (
            f"soft time limit{_seconds(limits[1])} exceeded: SoftTimeLimitExceeded was raised "
            "in the task, which did not handle it"
        )
    if isinstance(exc, NotRegistered):
        return f"unknown task name: no task {exc.args[0] if exc.args else ''!r} is registered"
    if isinstance(exc, DecodeError):
        return f"the message body could not be decoded: {exc}"
    if isinstance(exc, InvalidTaskError):
        return f"the message is not a valid task message: {exc}"
    try:
        return str(exc)
    except Exception:
        # A broken __str__ must not lose the failure.
        return f"{type(exc).__name__} (its message could not be read: str() raised)"


def _error_fields(
    exc: BaseException | None, traceback: str | None, request: Any = None
) -> dict[str, Any]:
    if exc is None:
        return {}
    if isinstance(exc, UnpickleableExceptionWrapper):
        # Celery wraps an exception it cannot pickle across processes; the user raised
        # the original.
        text = getattr(exc, "text", None)
        module, name, message = exc.exc_module, exc.exc_cls_name, str(text or exc.exc_args)
    else:
        module, name, message = type(exc).__module__, type(exc).__qualname__, ""
    return {
        "error_type": name if module == "builtins" else f"{module}.{name}",
        "error_message": message or _describe(exc, request),
        "traceback": traceback or "",
    }


def _progress_fields(meta: Any) -> dict[str, Any]:
    """celery-progress's convention: ``update_state(meta={"current": .., "total": ..})``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("current"), int | float):
        return {}
    total = meta.get("total")
    return {
        "progress_current": float(meta["current"]),
        "progress_total": float(total) if isinstance(total, int | float) else None,
        "progress_message": str(meta.get("description") or meta.get("message") or ""),
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
    fields: dict[str, Any] = _request_meta(request)
    fields["result"] = result_json(task_id, encoded)
    if children:
        fields["children"] = jsoncodec.dumps(children)
    _record_outcome(
        task_id, state, _attempt(request), value, traceback, request, expires_after, fields
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
    fields["result"] = result_json(task_id, app.backend.prepare_exception(exc, "json"))
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


def retry_sending(task_id: str) -> None:
    if len(_retry_sent) >= _RETRY_SENT_MAX:
        # Only retries whose report never came are left; their times do not matter.
        _retry_sent.clear()
    _retry_sent[task_id] = timezone.now()


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
        fields.update(_error_fields(exc, traceback, request))
        if exc is not None:
            # The history keeps each attempt's error; the row keeps only the last.
            detail = {k: fields[k] for k in ("error_type", "error_message", "traceback")}
    else:
        fields.update(_progress_fields(value))
    if states.is_done(state):
        fields["finished_at"] = now
        if expires_after is not None:
            fields["expires_at"] = now + expires_after
    # Progress still coalescing goes first, so the outcome is the last word.
    progress.drain(task_id)
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
        store.event(request.id, states.RETRY, _attempt(request), now, next_retry_at=when),
        {"next_retry_at": when.isoformat()},
    )
