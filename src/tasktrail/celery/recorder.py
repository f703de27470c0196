"""Turn what Celery tells us (messages, requests, outcomes) into store events."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from kombu.exceptions import EncodeError

from .. import conf, jsoncodec, owner, states, store

REDACTED = "[redacted]"


def _attempt(request: Any) -> int:
    retries = getattr(request, "retries", None)
    return retries + 1 if isinstance(retries, int) else 0


def _args_json(value: Any) -> str | None:
    """Arguments as capped JSON: too large or not JSON becomes a marker, never an error."""
    if value is None:
        return None
    limit = conf.get().MAX_ARGS_BYTES
    try:
        text = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        return jsoncodec.dumps({"tasktrail_omitted": f"not JSON: {exc}"})
    if len(text) > limit:
        return jsoncodec.dumps(
            {"tasktrail_omitted": f"{len(text)} bytes, over MAX_ARGS_BYTES ({limit})"}
        )
    return text


def _kwargs_json(kwargs: Any) -> str | None:
    if not isinstance(kwargs, dict):
        return _args_json(kwargs)
    hidden = conf.get().REDACT_KWARGS
    return _args_json({k: REDACTED if k in hidden else v for k, v in kwargs.items()})


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


def expires_after(state: str, app: Any) -> timedelta | None:
    if not states.is_done(state):
        return None
    return conf.expires_after(
        state == states.SUCCESS,
        app.conf.get("result_expires"),
        app.conf.get("result_failure_expires"),
    )


def _queue(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


def _request_meta(request: Any) -> dict[str, Any]:
    """What a worker-side event knows about the task, so it can create the record."""
    if request is None:
        return {}
    owner_id = getattr(request, owner.HEADER, None)
    return {
        "name": getattr(request, "task", None) or "",
        "queue": _queue(request),
        "args": _args_json(getattr(request, "args", None)),
        "kwargs": _kwargs_json(getattr(request, "kwargs", None)),
        "parent_id": getattr(request, "parent_id", None) or "",
        "root_id": getattr(request, "root_id", None) or "",
        "group_id": getattr(request, "group", None) or "",
        "owner_id": owner_id,
        "worker": getattr(request, "hostname", None) or "",
    }


def published(headers: dict[str, Any], body: Any, routing_key: str, max_retries: Any) -> None:
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
        )
    )


def received(request: Any) -> None:
    """``request`` is the worker's ``Request``; its context carries the message headers."""
    now = timezone.now()
    context = request._context
    if _attempt(context) > 1 and request.eta:
        # A retry held for its countdown: RETRY with its next_retry_at says more
        # than RECEIVED would, so the record keeps it until the attempt starts.
        return
    meta = _request_meta(context)
    meta.update(name=request.name or meta["name"], received_at=now)
    store.record(store.event(request.id, states.RECEIVED, _attempt(context), now, **meta))


def started(task: Any, task_id: str) -> None:
    request = task.request
    now = timezone.now()
    store.record(
        store.event(
            task_id,
            states.STARTED,
            _attempt(request),
            now,
            **_request_meta(request),
            max_retries=task.max_retries if isinstance(task.max_retries, int) else None,
            worker_pid=os.getpid(),
            started_at=now,
        ),
        {"pid": os.getpid()},
    )


def _error_fields(exc: BaseException | None, traceback: str | None) -> dict[str, Any]:
    if exc is None:
        return {}
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return {"error_type": name, "error_message": str(exc), "traceback": traceback or ""}


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
    now = timezone.now()
    fields: dict[str, Any] = _request_meta(request)
    fields["result"] = result_json(task_id, encoded)
    if children:
        fields["children"] = jsoncodec.dumps(children)
    detail: dict[str, Any] | None = None
    if isinstance(value, BaseException) or state in states.EXCEPTION_STATES:
        exc = value if isinstance(value, BaseException) else None
        fields.update(_error_fields(exc, traceback))
        if exc is not None:
            detail = {"error_type": fields["error_type"], "error_message": fields["error_message"]}
    else:
        fields.update(_progress_fields(value))
    if states.is_done(state):
        fields["finished_at"] = now
        if expires_after is not None:
            fields["expires_at"] = now + expires_after
    store.record(store.event(task_id, state, _attempt(request), now, **fields), detail)


def retry_scheduled(request: Any, when: datetime | float | None) -> None:
    """The retry signal adds what the RETRY result lacks: when the next attempt runs."""
    now = timezone.now()
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


def progress(
    task_id: str,
    request: Any,
    current: float,
    total: float | None,
    message: str,
    meta: dict[str, Any],
) -> None:
    now = timezone.now()
    store.record(
        store.event(
            task_id,
            states.PROGRESS,
            _attempt(request),
            now,
            progress_current=float(current),
            progress_total=None if total is None else float(total),
            progress_message=message,
            meta=jsoncodec.dumps(meta) if meta else None,
        )
    )
