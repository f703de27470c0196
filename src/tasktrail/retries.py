"""Retry policies: how many attempts, how long to wait between them, which errors retry.

A policy is a plain value: the project-wide one comes from ``TASKTRAIL["RETRY"]``, a
task refines it with its ``tasktrail_retry`` option. The worker turns policies into
Celery's own task options (see :mod:`tasktrail.celery.retry`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.module_loading import import_string


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: Runs in total, the first one included; ``None``: no limit.
    max_attempts: int | None = 4
    #: Seconds before the first retry; every later wait doubles, up to ``backoff_max``.
    backoff: float = 1.0
    backoff_max: float = 600.0
    #: Full jitter: wait a random time between 0 and the computed delay, so that tasks
    #: failing together (a dependency went down) do not all retry together.
    jitter: bool = True
    #: Exceptions that retry the task without it calling ``self.retry()``.
    retry_on: tuple[type[BaseException], ...] = ()

    @property
    def max_retries(self) -> int | None:
        """The same limit in Celery's terms."""
        return None if self.max_attempts is None else self.max_attempts - 1

    def delay(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next run, after ``retries`` earlier retries."""
        ceiling = min(self.backoff_max, self.backoff * 2 ** min(retries, 64))
        return (rng or random).uniform(0, ceiling) if self.jitter else ceiling


def _exception(value: object) -> type[BaseException]:
    found = import_string(value) if isinstance(value, str) else value
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"retry_on: {value!r} is not an exception class")
    return found


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _attempts(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_attempts must be an int >= 1 or None, got {value!r}")
    return value


def parse(raw: RetryPolicy | Mapping[str, Any], base: RetryPolicy | None = None) -> RetryPolicy:
    """A policy from a mapping of the fields to change in ``base`` (the defaults if ``None``).

    ``retry_on`` takes exception classes or their dotted paths. Raises ``ValueError``.
    """
    if isinstance(raw, RetryPolicy):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"a retry policy is a dict or a RetryPolicy, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(RetryPolicy)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ValueError(f"unknown retry option(s) {', '.join(unknown)}; known: {sorted(fields)}")
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "retry_on":
            items: Iterable[object] = (value,) if isinstance(value, str | type) else value
            changes[name] = tuple(_exception(v) for v in items)
        elif name == "max_attempts":
            changes[name] = _attempts(value)
        elif name == "jitter":
            changes[name] = bool(value)
        else:
            changes[name] = _number(name, value)
    return dataclasses.replace(base or RetryPolicy(), **changes)
