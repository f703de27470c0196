"""Where the store's tables live: the ``DATABASES`` alias ``TASKTRAIL["DATABASE"]``."""

from __future__ import annotations

from typing import Any

from .. import conf


def alias() -> str:
    return conf.get().DATABASE


def tasks() -> Any:
    """The task table's manager, on the store's database."""
    from ..models import Task

    return Task.objects.using(alias())
