"""Run ``manage.py tasktrail`` in-process, on rows written through the store's write path."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command

from tests.conftest import recorded  # noqa: F401  (re-exported to the tests)

Run = Callable[..., str]


@pytest.fixture
def tasktrail() -> Run:
    """``tasktrail(*args)``: run the command, return what it printed."""

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("tasktrail", *args, stdout=out)
        return out.getvalue()

    return run
