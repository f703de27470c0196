"""tasktrail's other surfaces for django.tasks tasks, with a real worker: owner capture
and the access rule of the JSON endpoint, the async API, the command line, and a plain
Celery task beside a django.tasks one in the same worker."""

from __future__ import annotations

import io
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.tasks import TaskResultStatus, default_task_backend

import tasktrail
from tests.conftest import client_for, make_user
from tests.integration.conftest import wait_for
from tests.testapp import tasks as celery_tasks

from . import djtasks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_sender_owns_the_task_and_only_they_read_it(worker: Any) -> None:
    owner, other = make_user("dj-owner"), make_user("dj-other")
    with tasktrail.owned_by(owner):
        result = djtasks.add.enqueue(1, 2)
    record = wait_for(result.id, lambda r: r.ready)
    assert record.owner_id == owner.pk
    url = f"/tasktrail/tasks/{result.id}/status/"
    assert client_for(owner).get(url).json()["result"] == 3
    assert client_for(other).get(url).status_code == 404


def test_the_async_api(worker: Any) -> None:
    async def send_and_read() -> tuple[str, str]:
        result = await djtasks.async_add.aenqueue(4, 5)
        found = await djtasks.async_add.aget_result(result.id)
        return result.id, str(found.status)

    task_id, status = async_to_sync(send_and_read)()
    assert status in {"READY", "RUNNING", "SUCCESSFUL"}
    wait_for(task_id, lambda r: r.ready)
    found = async_to_sync(default_task_backend.aget_result)(task_id)
    assert found.status == TaskResultStatus.SUCCESSFUL and found.return_value == 9


def test_the_command_line_names_the_django_task(worker: Any) -> None:
    result = djtasks.fail.enqueue("for the cli")
    wait_for(result.id, lambda r: r.ready)
    out = io.StringIO()
    call_command("tasktrail", "status", result.id, stdout=out)
    assert "tests.tasks.djtasks.fail" in out.getvalue() and "FAILURE" in out.getvalue()


def test_a_celery_task_and_a_django_task_share_the_worker(worker: Any) -> None:
    plain = celery_tasks.add.delay(2, 2)
    django_task = djtasks.add.enqueue(3, 3)
    assert plain.get(timeout=20) == 4
    record = wait_for(django_task.id, lambda r: r.ready)
    assert record.worker == tasktrail.get(plain.id).worker
    assert (tasktrail.get(plain.id).name, record.name) == (
        "tests.testapp.tasks.add",
        "tests.tasks.djtasks.add",
    )
