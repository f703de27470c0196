"""Run ``manage.py tasktrail`` in-process, on rows written through the store's write path."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.core.management import call_command

from tasktrail import store


def recorded(task_id: str, state: str, at: datetime, attempt: int = 1, **values: Any) -> None:
    """Write one event for ``task_id`` now, as a worker would."""
    store.record(store.event(task_id, state, attempt, at, **values))
    store.flush()


Run = Callable[..., str]


@pytest.fixture
def tasktrail() -> Run:
    """``tasktrail(*args)``: run the command, return what it printed."""

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("tasktrail", *args, stdout=out)
        return out.getvalue()

    return run
