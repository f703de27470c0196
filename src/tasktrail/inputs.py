"""What operators type: whole numbers, seconds, moments and ages, page cursors, users.

One parser each, shared by the CLI (:mod:`tasktrail.cli.options`) and the dashboard's
filters (:mod:`tasktrail.web.dashboard`). Each refuses, with the reason, any value no
database stores or no Python arithmetic survives (a limit past ``bigint``, a date past
year 9999 in UTC, an age past ``timedelta``'s 999,999,999 days), so the query never
sees it: :class:`Refused` is a ``ValueError`` whose text is meant for a person.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from . import ids, owner
from .store import queries

_AGO = re.compile(r"^([0-9]+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Longest number text read: 19 digits already pass ``bigint``, and Python refuses to
#: convert more than 4,300 digits at all.
_DIGITS = 30


class Refused(ValueError):
    """An input refused, with the reason for a person."""


def _shown(text: str) -> str:
    return repr(text[:60])


def task_id(text: str) -> str:
    problem = ids.problem(text)
    if problem is not None:
        raise Refused(problem)
    return text


def whole(text: str, low: int = 1, high: int = queries.BIGINT_MAX) -> int:
    """A whole number from ``low`` to ``high`` (``12``, ``1_000``; not ``1e3``)."""
    value = None
    if len(text.strip()) <= _DIGITS:
        try:
            value = int(text)
        except ValueError:
            value = None
    if value is None or not low <= value <= high:
        raise Refused(f"must be a whole number from {low:,} to {high:,}, got {_shown(text)}")
    return value


def seconds(text: str, high: float) -> float:
    """A positive number of seconds, at most ``high``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= high):
        raise Refused(f"must be a number of seconds above 0, at most {high:g}, got {_shown(text)}")
    return value


def moment(value: datetime) -> datetime:
    """``value`` (local time unless it says) if every database can store it."""
    aware = value if timezone.is_aware(value) else timezone.make_aware(value)
    if not queries.storable(aware):
        raise Refused(
            f"{value.isoformat()} is out of range: give a moment from "
            f"{queries.EARLIEST.date().isoformat()} to {queries.LATEST.date().isoformat()} (UTC)"
        )
    return aware


def ago(text: str) -> datetime | None:
    """The moment an age such as ``90m`` names, or ``None`` if ``text`` is no age."""
    found = _AGO.match(text)
    if found is None:
        return None
    try:
        if len(found[1]) > _DIGITS:
            raise OverflowError
        return moment(timezone.now() - timedelta(**{_UNITS[found[2]]: int(found[1])}))
    except (OverflowError, Refused):
        raise Refused(
            f"age {_shown(text)} reaches back past {queries.EARLIEST.date().isoformat()}"
        ) from None


def when(text: str) -> datetime:
    """An ISO date or datetime (local time unless it says), or an age such as ``90m``."""
    found = ago(text)
    if found is not None:
        return found
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            f"bad date {_shown(text)}: use ISO 8601 (2026-11-25 or 2026-11-25T14:30) "
            "or an age such as 30s, 90m, 12h, 2d, 1w"
        ) from None
    return moment(parsed)


def cursor(text: str) -> queries.Cursor:
    """A page cursor as a previous page printed it."""
    try:
        return queries.parse_cursor(text)
    except ValueError:
        raise Refused(f"bad cursor {text[:80]!r}: pass the value a previous page printed") from None


def user(text: str) -> Any:
    """The primary key of the user ``text`` names (a username, else a numeric id)."""
    try:
        pk = owner.lookup(text)
    except ValueError:
        pk = None
    if pk is None or (isinstance(pk, int) and not 0 <= pk <= queries.BIGINT_MAX):
        raise Refused(f"unknown user {_shown(text)}: give a username or a user id")
    return pk
