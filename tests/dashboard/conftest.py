"""Users of every kind and tasks written through the store's write path, as workers write them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from tasktrail import store

SCRIPT = "<script>alert(1)</script>"
#: A queue no worker consumes: tasks the tests send again stay in the broker.
QUEUE = "tt-dashboard-tests"


def recorded(task_id: str, state: str, at: datetime | None = None, **values: Any) -> None:
    """Write one event for ``task_id``, as a worker would, and wait until it is stored."""
    attempt = values.pop("attempt", 1)
    store.record(store.event(task_id, state, attempt, at or timezone.now(), **values))
    store.sync()


def _user(username: str, *codenames: str, **flags: Any) -> User:
    user = User.objects.create_user(username, **flags)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def users() -> dict[str, User]:
    return {
        "plain": _user("plain"),
        "viewer": _user("viewer", "view_task"),
        "staff": _user("staff", is_staff=True),
        "operator": _user("operator", "change_task", is_staff=True),
    }


def client_for(user: User | None, **options: Any) -> Client:
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


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
