"""Where a task's ``tasktrail_show_result`` comes from, with a real worker: the task
itself, recorded when it is sent or started, never the web process's registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tasktrail
from tasktrail import options, store
from tests.conftest import client_for, make_user
from tests.testapp import tasks
from tests.testapp.celeryapp import app

from .conftest import unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PRIVATE = tasks.keeps_result_private.name


@pytest.fixture
def never_imported() -> Iterator[None]:
    """This process, the sender, forgets the task: as a web process that sends it by
    name (``send_task``) without importing the module that defines it."""
    task = app.tasks.pop(PRIVATE)
    try:
        yield
    finally:
        app.tasks[PRIVATE] = task


@pytest.mark.usefixtures("never_imported")
def test_a_hidden_result_sent_by_name_from_a_process_that_never_imported_it_stays_hidden(
    start_worker: Callable[..., Any],
) -> None:
    owner = make_user("sender")
    staff = make_user("boss", is_staff=True)
    queue = unique_queue("private")
    with tasktrail.owned_by(owner):
        task_id = app.send_task(PRIVATE, queue=queue).id
    store.sync()
    assert tasktrail.get(task_id).show_result == options.UNKNOWN
    start_worker("private", queue)
    record = wait_for(task_id, lambda r: r.state == "SUCCESS")
    # The worker, which has the task registered, recorded its option.
    assert record.show_result == options.HIDDEN
    url = f"/tasktrail/tasks/{task_id}/status/"
    seen = client_for(owner).get(url).json()
    assert seen["state"] == "SUCCESS" and "result" not in seen
    assert client_for(staff).get(url).json()["result"] == {"secret": "only staff see this"}


def test_a_task_sent_from_a_process_that_imported_it_is_described_when_sent() -> None:
    queue = unique_queue("nobody")  # no worker: the record is the sender's alone
    hidden = tasks.keeps_result_private.apply_async(queue=queue)
    default = tasks.add.apply_async((1, 2), queue=queue)
    store.sync()
    assert tasktrail.get(hidden.id).show_result == options.HIDDEN
    assert tasktrail.get(default.id).show_result == options.DEFAULT
