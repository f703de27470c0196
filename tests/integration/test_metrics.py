"""The metrics endpoint with real workers: every metric tasktrail exports moves when
tasks succeed, fail, retry and are lost, scraped and parsed as Prometheus does."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from tasktrail.store import workers as stored_workers
from tests.conftest import client_for
from tests.testapp import tasks

from .conftest import FAULT_ENV, FAULT_LOST_AFTER, WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SETTLED_WITHIN = FAULT_LOST_AFTER + 3 * float(FAULT_ENV["TT_HEARTBEAT_INTERVAL"]) + 10
#: Every metric the endpoint exports, as the parser names its families.
EXPORTED = {
    "tasktrail_tasks",
    "tasktrail_task_retries",
    "tasktrail_task_wait_seconds",
    "tasktrail_task_runtime_seconds",
    "tasktrail_tasks_running",
    "tasktrail_tasks_waiting",
    "tasktrail_tasks_stuck",
    "tasktrail_workers_alive",
    "tasktrail_worker_up",
    "tasktrail_worker_tasks_active",
    "tasktrail_broker_up",
    "tasktrail_queue_messages",
    "tasktrail_queue_consumers",
}


def scrape(user: User) -> tuple[set[str], Samples]:
    response = client_for(user).get("/tasktrail/metrics")
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.content.decode()))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def moved(name: str, *scrapes: Samples) -> bool:
    """Whether any sample of metric family ``name`` differs between the scrapes."""
    keys = {k for s in scrapes for k in s if k[0] == name or k[0].startswith(f"{name}_")}
    return any(len({s.get(k) for s in scrapes}) > 1 for k in keys)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_metric_moves_when_real_workers_run_tasks(
    start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = User.objects.create_user("metrics-staff", is_staff=True)
    # Stuck after 2 s, so the task nobody consumes becomes stuck within the test.
    with override_settings(TASKTRAIL={**settings.TASKTRAIL, "STUCK_AFTER": 2}):
        names, before = scrape(staff)
        assert EXPORTED <= names | {"tasktrail_queue_consumers"}
        start_worker("watcher", unique_queue("watcher"))
        queue = unique_queue("victim")
        victim = start_worker("victim", queue, concurrency=2)
        done = [
            tasks.add.apply_async((1, 2), queue=queue),
            tasks.boom.apply_async(("no",), queue=queue),
            tasks.flaky.apply_async((1, 0.1), queue=queue),
        ]
        for result in done:
            wait_for(result.id, lambda r: r.state in {"SUCCESS", "FAILURE"}, timeout=60)
        sleeping = tasks.sleepy.apply_async((60,), queue=queue)
        wait_for(sleeping.id, lambda r: r.state == "STARTED")
        # Sent where no worker consumes: waiting in the broker and the store, then stuck.
        orphan_queue = unique_queue("nobody")
        waiting = tasks.add.apply_async((3, 4), queue=orphan_queue)
        wait_for(waiting.id, lambda r: r.state == "PENDING")
        # The heartbeat carries the pool's size (--concurrency=2) for the workers page.
        assert stored_workers.pools()[victim.hostname] == 2
        # The victim's heartbeat carries the running task.
        deadline = time.monotonic() + 10
        while True:
            _, during = scrape(staff)
            active = during.get(("tasktrail_worker_tasks_active", (("hostname", victim.hostname),)))
            if active == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(2.5)
        _, during_stuck = scrape(staff)
        victim.kill()
        wait_for(sleeping.id, lambda r: r.state == "LOST", timeout=SETTLED_WITHIN)
        # The victim counts as gone once its heartbeat is overdue by its own bound.
        deadline = time.monotonic() + SETTLED_WITHIN
        while True:
            _, after = scrape(staff)
            gone = after.get(("tasktrail_worker_up", (("hostname", victim.hostname),)))
            if gone == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # And the broker, down for one scrape (this process's app only).
        url = current_app.conf.broker_url
        host = url.split("//", 1)[1].split("/", 1)[0].split("@")[-1]
        with monkeypatch.context() as patched:
            patched.setattr(
                current_app.conf, "broker_url", url.replace(host, f"127.0.0.1:{_closed_port()}")
            )
            _, broker_down = scrape(staff)

    scrapes = (before, during, during_stuck, after, broker_down)
    not_moved = [n for n in sorted(EXPORTED) if not moved(n, *scrapes)]
    # Redis keeps no consumers: that gauge has no sample there.
    if not any(k[0] == "tasktrail_queue_consumers" for s in scrapes for k in s):
        not_moved.remove("tasktrail_queue_consumers")
    assert not_moved == []

    def count(samples: Samples, metric: str, **labels: str) -> float:
        return samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    tasks_total = "tasktrail_tasks_total"
    add, boom, flaky = tasks.add.name, tasks.boom.name, tasks.flaky.name
    assert (
        count(after, tasks_total, name=add, state="SUCCESS")
        - count(before, tasks_total, name=add, state="SUCCESS")
        == 1
    )
    assert (
        count(after, tasks_total, name=boom, state="FAILURE")
        - count(before, tasks_total, name=boom, state="FAILURE")
        == 1
    )
    assert (
        count(after, tasks_total, name=flaky, state="SUCCESS")
        - count(before, tasks_total, name=flaky, state="SUCCESS")
        == 1
    )
    retries = "tasktrail_task_retries_total"
    assert count(after, retries, name=flaky) - count(before, retries, name=flaky) == 1
    lost = count(after, tasks_total, name=tasks.sleepy.name, state="LOST")
    assert lost - count(before, tasks_total, name=tasks.sleepy.name, state="LOST") == 1
    runtime = "tasktrail_task_runtime_seconds_count"
    assert count(after, runtime, name=add) - count(before, runtime, name=add) == 1
    # The retried task's wait is not observed (its countdown is no queue wait).
    wait = "tasktrail_task_wait_seconds_count"
    assert count(after, wait, name=flaky) == count(before, wait, name=flaky)
    assert count(during, "tasktrail_tasks_running") >= 1
    assert count(during, "tasktrail_tasks_waiting") >= 1
    assert count(during_stuck, "tasktrail_tasks_stuck") >= 1
    assert count(during, "tasktrail_broker_up") == 1
    assert count(broker_down, "tasktrail_broker_up") == 0
    if ("tasktrail_queue_messages", (("queue", orphan_queue),)) in during:
        assert count(during, "tasktrail_queue_messages", queue=orphan_queue) == 1
