"""Who enqueued a task: a context variable set per request, carried in a message header.

The header lets the worker fill in the owner even when the publish-side write was
lost, and keeps owner capture out of user task code.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from . import options

#: The message header carrying the owner (registered in :mod:`tasktrail.options`).
HEADER = options.OWNER_HEADER
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("tasktrail_owner", default=None)


def current() -> Any:
    """The primary key of the user tasks sent now belong to, or ``None``."""
    value = _current.get()
    return value() if callable(value) else value


def _pk(user: Any) -> Any:
    if user is None or getattr(user, "is_anonymous", False):
        return None
    return getattr(user, "pk", user)


@contextlib.contextmanager
def owned_by(user: Any) -> Iterator[None]:
    """Tasks sent inside this block belong to ``user`` (a user object or its primary key).

    ``user`` may also be a callable returning one, resolved only when a task is sent.
    """
    token = _current.set((lambda: _pk(user())) if callable(user) else _pk(user))
    try:
        yield
    finally:
        _current.reset(token)


def lookup(text: str) -> Any:
    """The primary key of the user named ``text`` (a username, else a numeric id).

    Raises ``ValueError`` for neither: an operator's typo must not list nobody's tasks.
    """
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager
    found = users.filter(**{users.model.USERNAME_FIELD: text}).values_list("pk", flat=True)
    if found:
        return found[0]
    if text.isdigit():
        return int(text)
    raise ValueError(f"unknown user {text[:60]!r}: give a username or a user id")


def username(pk: Any) -> str | None:
    """The username of the user ``pk``, or ``None`` for no such user (any more)."""
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager
    found = users.filter(pk=pk).values_list(users.model.USERNAME_FIELD, flat=True)
    return str(found[0]) if found else None
