"""Progress from many tasks at once in a real ``--pool=threads`` worker.

The threads pool is where several tasks share one process: each task's calls must
find its own run (a thread-local set at prerun, a captured reporter), and every
task's last value must be written before its outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.testapp import tasks

from .conftest import WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TASKS = 30
CALLS = 5000
VIAS = ("progress", "reporter", "thread")


def test_thirty_tasks_of_a_threads_pool_each_end_with_their_own_last_value(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    queue = unique_queue("threads")
    # LOST_AFTER well above a loaded machine's heartbeat delays: nothing here is lost.
    env = {"TT_LOST_AFTER": "120"}
    start_worker("threads", queue, env=env, pool="threads", concurrency=TASKS)
    group = uuid.uuid4().hex
    sent = [
        tasks.progress_alongside.apply_async(
            (group, TASKS, index, CALLS, VIAS[index % len(VIAS)]), queue=queue
        )
        for index in range(TASKS)
    ]
    assert [result.get(timeout=120) for result in sent] == ["reported"] * TASKS
    for index, result in enumerate(sent):
        record = wait_for(result.id, lambda r: r.ready)
        assert record.state == "SUCCESS"
        assert record.progress is not None, index
        assert (record.progress.current, record.progress.message) == (CALLS, f"task {index}")
