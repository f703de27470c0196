"""The error a user reads for a failed attempt: its type, a message that says what
happened (Celery's own say little for time limits and refused messages), and the
traceback, capped by the payload rules."""

from __future__ import annotations

from typing import Any

from celery.exceptions import (
    InvalidTaskError,
    NotRegistered,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
)
from celery.utils.serialization import UnpickleableExceptionWrapper
from kombu.exceptions import DecodeError

from .. import payload

#: The columns an error fills; the history keeps them per attempt, the row the last.
FIELDS = ("error_type", "error_message", "traceback")


def _seconds(value: Any) -> str:
    return f" ({value:g} s)" if isinstance(value, int | float) else ""


def describe(exc: BaseException, request: Any) -> str:
    """The error message a user reads."""
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


def fields(exc: BaseException | None, traceback: str | None, request: Any = None) -> dict[str, Any]:
    """The error columns for ``exc``; none when there is no exception."""
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
        "error_message": payload.message(message or describe(exc, request)),
        "traceback": payload.traceback(traceback or ""),
    }


def class_path(error_type: str) -> str:
    """The importable path of a recorded ``error_type``: :func:`fields` leaves the
    ``builtins.`` off a built-in exception (``ValueError``), and Python imports it only
    with it (``builtins.ValueError``)."""
    return error_type if "." in error_type else f"builtins.{error_type}"
