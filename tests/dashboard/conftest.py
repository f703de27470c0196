"""Users of every kind and tasks written through the store's write path, as workers write them."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User

from tests.conftest import client_for, make_user, recorded  # noqa: F401  (re-exported)

SCRIPT = "<script>alert(1)</script>"
#: A queue no worker consumes: tasks the tests send again stay in the broker.
QUEUE = "tt-dashboard-tests"


@pytest.fixture
def users() -> dict[str, User]:
    return {
        "plain": make_user("plain"),
        "viewer": make_user("viewer", "view_task"),
        "staff": make_user("staff", is_staff=True),
        "operator": make_user("operator", "change_task", is_staff=True),
    }


def unique(prefix: str) -> str:
    """A task id no earlier test used: the write buffer remembers ids across tests (to
    skip repeated history), though each test starts with empty tables."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def failed(users: dict[str, User]) -> str:
    """The plain user's task that failed; its arguments, name and error carry markup."""
    task_id = unique("t-failed")
    recorded(
        task_id,
        "FAILURE",
        name="tests.testapp.tasks.add",
        queue=QUEUE,
        args="[1, 2]",
        kwargs=f'{{"note": "{SCRIPT}"}}',
        owner_id=users["plain"].pk,
        error_type="ValueError",
        error_message=SCRIPT,
        traceback=f"Traceback (most recent call last):\nValueError: {SCRIPT}\n",
    )
    return task_id
