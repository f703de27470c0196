"""Shared fixtures and helpers: service checks that skip locally and fail in CI, task
records written as a worker would, users and logged-in clients."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# One Chromium for the session, whichever directory its tests are in.
pytest_plugins = ["tests.chromium"]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(service: str, host: str, port: int) -> None:
    """Skip (locally) or fail (in CI) when ``service`` is not listening."""
    if reachable(host, port):
        return
    message = f"{service} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture(autouse=True)
def _flush_tasktrail_between_tests() -> Iterator[None]:
    # Rows buffered by one test must not land in the next test's tables, and must be
    # written before pytest-django's teardown truncates them: the flush thread's upsert
    # (task row, then history) and TRUNCATE's locks taken in another order deadlocked
    # PostgreSQL in CI on 2026-12-02 (a failed eager task's record, never synced).
    # pytest-django's autouse db fixture is set up before this one, so this teardown
    # runs before its flush.
    from tasktrail import store

    store.sync()
    yield
    store.sync()


@pytest.fixture(scope="session", autouse=True)
def _release_tasktrail_connections(django_db_setup: None, django_db_blocker: object) -> object:
    """Let the test database be dropped although flush threads keep connections open."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def recorded(
    task_id: str, state: str, at: datetime | None = None, attempt: int = 1, **values: Any
) -> None:
    """Write one event for ``task_id`` as a worker would, stored when this returns (from
    the calling thread, with its connection). Like a worker's, it records the task's
    ``tasktrail_show_result`` (as unset, unless ``show_result`` says otherwise)."""
    from django.utils import timezone

    from tasktrail import options, store

    values.setdefault("show_result", options.DEFAULT)
    store.record(store.event(task_id, state, attempt, at or timezone.now(), **values))
    store.flush()


def make_user(username: str, *codenames: str, **flags: Any) -> User:
    """A user holding the tasktrail permissions ``codenames`` (``view_task``, ...)."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, **flags)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def client_for(user: User | None, **options: Any) -> Client:
    """A test client logged in as ``user`` (anonymous for ``None``)."""
    from django.test import Client

    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def heartbeat_row(
    hostname: str,
    pid: int,
    started_at: datetime,
    last_seen: datetime,
    silent_after: datetime,
    active: int = 0,
    reserved: int = 0,
) -> None:
    """A worker's heartbeat row with the given moments (a real heartbeat takes the
    database's clock, so the past and future of a test are written directly)."""
    from tasktrail.models import Worker

    Worker.objects.update_or_create(
        hostname=hostname,
        defaults={
            "pid": pid,
            "started_at": started_at,
            "last_seen": last_seen,
            "silent_after": silent_after,
            "stopped_at": None,
            "active": active,
            "reserved": reserved,
        },
    )


#: pytest-django's fixtures that open the test database without its ``django_db`` marker.
_DATABASE_FIXTURES = frozenset({
    "db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
    "live_server", "admin_client", "admin_user",
})  # fmt: skip
#: The markers the Makefile's PostgreSQL pass selects (PG_TESTS).
_POSTGRES_PASS = ("django_db", "integration", "postgres")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-worker tests last: the session's worker, once started, checks for lost
    tasks in the test database, and would settle the fake silent workers' tasks that
    store tests write.

    And no test reaches the database unseen by the PostgreSQL pass, which selects by
    marker: one that uses it through a fixture alone would run on SQLite only."""
    unseen = [
        item.nodeid
        for item in items
        if _DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not any(item.get_closest_marker(m) for m in _POSTGRES_PASS)
    ]
    if unseen:
        raise pytest.UsageError(
            "these tests use the database without the django_db marker, so the "
            f"PostgreSQL pass (make test) would skip them: {', '.join(unseen)}"
        )
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)
