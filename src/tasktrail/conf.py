"""The ``TASKTRAIL`` settings dict: defaults, validation and a cached view of it."""

from __future__ import annotations

import dataclasses
import functools
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    #: Alias in ``DATABASES`` that holds tasktrail's tables.
    DATABASE: str = "default"
    #: How long a success is kept. ``None``: Celery's ``result_expires`` (1 day by default).
    RESULT_EXPIRES: timedelta | None = None
    #: How long a failure (or revocation, or lost task) is kept.
    #: ``None``: Celery's ``result_failure_expires``, else 7 days.
    FAILURE_EXPIRES: timedelta | None = None
    #: A task whose worker stopped heartbeating this long ago is ``LOST``.
    LOST_AFTER: timedelta = timedelta(seconds=30)
    #: Arguments larger than this (as JSON) are stored as a short marker instead.
    MAX_ARGS_BYTES: int = 64 * 1024
    #: A result larger than this (as JSON) fails the task with a clear reason.
    MAX_RESULT_BYTES: int = 1024 * 1024
    #: Keyword-argument names whose values are never stored.
    REDACT_KWARGS: frozenset[str] = frozenset({"password", "secret", "token", "api_key"})
    #: Writes are buffered per process and flushed at least this often.
    FLUSH_INTERVAL: timedelta = timedelta(milliseconds=20)
    #: Most events held in a process's buffer before the caller flushes inline.
    MAX_BUFFERED: int = 10_000
    #: Record ``RECEIVED`` from the worker's main process.
    RECORD_RECEIVED: bool = True

    @property
    def flush_seconds(self) -> float:
        return self.FLUSH_INTERVAL.total_seconds()


_DEFAULT_FAILURE_EXPIRES = timedelta(days=7)
_DURATIONS = {"RESULT_EXPIRES", "FAILURE_EXPIRES", "LOST_AFTER", "FLUSH_INTERVAL"}
_NULLABLE = {"RESULT_EXPIRES", "FAILURE_EXPIRES"}


def _duration(name: str, value: object) -> timedelta | None:
    if value is None and name in _NULLABLE:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ImproperlyConfigured(
            f"TASKTRAIL[{name!r}] must be a timedelta or a number of seconds, got {value!r}"
        )
    if seconds < 0:
        raise ImproperlyConfigured(f"TASKTRAIL[{name!r}] must not be negative, got {value!r}")
    return timedelta(seconds=seconds)


def _coerce(name: str, value: Any) -> Any:
    if name in _DURATIONS:
        return _duration(name, value)
    if name == "REDACT_KWARGS":
        return frozenset(str(v) for v in value)
    if name in {"MAX_ARGS_BYTES", "MAX_RESULT_BYTES", "MAX_BUFFERED"} and (
        not isinstance(value, int) or isinstance(value, bool) or value <= 0
    ):
        raise ImproperlyConfigured(f"TASKTRAIL[{name!r}] must be a positive int")
    return value


def load(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown TASKTRAIL setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return Settings(**{name: _coerce(name, value) for name, value in raw.items()})


@functools.cache
def get() -> Settings:
    return load(getattr(django_settings, "TASKTRAIL", {}))


def expires_after(
    succeeded: bool, celery_result_expires: object, celery_failure_expires: object
) -> timedelta | None:
    """How long a finished task is kept: tasktrail's setting, else Celery's, else the default."""
    settings = get()
    if succeeded:
        if settings.RESULT_EXPIRES is not None:
            return settings.RESULT_EXPIRES
        return _duration("RESULT_EXPIRES", celery_result_expires)
    if settings.FAILURE_EXPIRES is not None:
        return settings.FAILURE_EXPIRES
    return _duration("FAILURE_EXPIRES", celery_failure_expires) or _DEFAULT_FAILURE_EXPIRES


@receiver(setting_changed)
def _reset(*, setting: str, **_: object) -> None:
    if setting == "TASKTRAIL":
        get.cache_clear()
