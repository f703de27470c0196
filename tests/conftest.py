"""Shared fixtures: service checks that skip locally and fail in CI."""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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
def _flush_tasktrail_between_tests() -> None:
    # Rows buffered by one test must not land in the next test's tables.
    from tasktrail import store

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
