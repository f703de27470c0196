"""A real Celery worker runs a task; its owner follows it over a WebSocket served by a
real uvicorn: every change the worker writes arrives, in order, then a normal close."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

import tasktrail
from tasktrail.channels import DONE
from tests.integration.conftest import services, worker  # noqa: F401  (fixtures)
from tests.testapp import tasks

from .conftest import Server, cookie_of, follow, run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_socket_follows_a_real_task_to_its_outcome(
    services: None,  # noqa: F811
    worker: Any,  # noqa: F811
    server: Server,
) -> None:
    owner = User.objects.create_user("owner")
    with tasktrail.owned_by(owner):
        result = tasks.reports_progress.apply_async((10, 0.05))
    url = server.ws(f"/tasktrail/tasks/{result.id}/ws/")
    closed = run(follow(url, cookie_of(owner), timeout=60))

    assert closed.code == DONE, closed
    received = closed.messages
    assert received[-1]["state"] == "SUCCESS"
    assert received[-1]["result"] == 10
    progress = [s["progress"]["current"] for s in received if s["state"] == "PROGRESS"]
    assert len(progress) >= 2, received
    assert progress == sorted(progress)
    versions = [s["version"] for s in received]
    assert versions == sorted(set(versions))
    phases = [s["phase"] for s in received]
    assert phases == sorted(phases, key=["waiting", "running", "done"].index)
