"""Live status with a real worker: each notifier carries its writes to a stream.

The stream is read through Django's ASGI handler in this process (the browser tests
add uvicorn and Chromium); the writes come from the worker process, published by the
notifier the worker itself chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import AsyncClient, override_settings

import tasktrail
from tasktrail import conf, notify
from tests.sse import events
from tests.testapp import tasks

from .conftest import WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _on_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the postgres notifier needs TT_DB=postgres")


@pytest.fixture(params=["postgres", "redis", "polling"])
def notifier_queue(
    request: pytest.FixtureRequest, worker: Any, start_worker: Callable[..., WorkerProcess]
) -> Iterator[str]:
    """The queue of a worker publishing through the notifier this process listens with."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    if request.param == "postgres":
        _on_postgres()
    elif request.param == "redis":
        # The session's worker publishes through its automatic choice; this one, Redis.
        queue = unique_queue("live-redis")
        start_worker("live-redis", queue, env={"TT_NOTIFY": "redis"})
    live = {**settings.TASKTRAIL, "NOTIFY": request.param, "POLL_INTERVAL": 0.05}
    with override_settings(TASKTRAIL=live):
        # This process now listens as a web process started with these settings, which
        # chose its notifier (and loaded its client: notify.install) at start-up.
        notify.backend()
        yield queue


async def _follow(task_id: str, user: User) -> list[dict[str, Any]]:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(f"/tasktrail/tasks/{task_id}/events/")
    assert response.status_code == 200
    return [e["data"] async for e in events(response.streaming_content) if "data" in e]


def test_a_stream_follows_a_real_task_to_its_outcome(notifier_queue: str) -> None:
    owner = User.objects.create_user("owner")
    with tasktrail.owned_by(owner):
        result = tasks.reports_progress.apply_async((10, 0.05), queue=notifier_queue)
    received = asyncio.run(asyncio.wait_for(_follow(result.id, owner), 30))

    assert received[-1]["state"] == "SUCCESS"
    assert received[-1]["progress"]["percent"] == 100
    progress = [s["progress"]["current"] for s in received if s["state"] == "PROGRESS"]
    assert len(progress) >= 2, received
    assert progress == sorted(progress)
    phases = [s["phase"] for s in received]
    assert phases == sorted(phases, key=["waiting", "running", "done"].index)


def test_a_progress_flood_is_written_a_few_times_a_second(worker: Any) -> None:
    _on_postgres()
    import psycopg

    from tasktrail.notify.postgres import CHANNEL

    calls = 200_000
    params = connection.get_connection_params()
    listener = psycopg.connect(
        **{k: v for k, v in params.items() if k not in ("cursor_factory", "context")},
        autocommit=True,
    )
    with listener:
        listener.execute(f"LISTEN {CHANNEL}")
        result = tasks.progress_flood.delay(calls)
        rate = result.get(timeout=120)
        record = wait_for(result.id, lambda r: r.ready)
        # Every flush that wrote the task notified once: that counts its writes.
        writes = sum(
            result.id in n.payload for n in listener.notifies(timeout=1.0, stop_after=None)
        )
    assert (record.state, record.progress and record.progress.current) == ("SUCCESS", calls)
    seconds = calls / rate
    interval = conf.get().PROGRESS_INTERVAL.total_seconds()
    print(f"\nprogress flood: {rate:,.0f} calls/s in the task, {writes} writes in {seconds:.2f} s")
    # PENDING, RECEIVED, STARTED and the outcome, plus at most one write per interval.
    assert writes <= 4 + seconds / interval + 1


def test_progress_from_threads_the_task_starts(worker: Any) -> None:
    result = tasks.progress_from_threads.delay()
    assert result.get(timeout=20) == "reported"
    record = wait_for(result.id, lambda r: r.ready)
    assert record.progress is not None
    assert (record.progress.current, record.progress.message) == (2, "captured")
