"""Argument types shared by subcommands: each rejects bad input with a clear message."""

from __future__ import annotations

import argparse
import math
import re
from datetime import datetime, timedelta

from django.utils import timezone

from .. import states

# Celery ids are usually UUIDs, but callers may choose their own: accept any printable
# text without spaces that fits the column.
_TASK_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")
_AGO = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def task_id(text: str) -> str:
    if not _TASK_ID.match(text):
        raise argparse.ArgumentTypeError(
            f"malformed task id {text[:60]!r}: expected 1 to 255 characters without spaces"
        )
    return text


def state(text: str) -> str:
    try:
        return states.validate(text.upper())
    except states.InvalidState as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def when(text: str) -> datetime:
    """An ISO date or datetime (local time unless it says), or an age such as ``90m``."""
    ago = _AGO.match(text)
    if ago:
        return timezone.now() - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad date {text[:60]!r}: use ISO 8601 (2026-11-25 or 2026-11-25T14:30) "
            "or an age such as 30s, 90m, 12h, 2d, 1w"
        ) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text[:60]!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text[:60]!r}")
    return value
