"""Outages of the services around tasktrail, with real processes: no final state is lost.

- PostgreSQL: the test database's connections are killed (``pg_terminate_backend``)
  again and again while tasks finish. (The server is shared, so it is not restarted.)
- Redis, as the broker: a private ``redis-server`` of the test's own is restarted while
  tasks are sent and run.
- The status store, at publish time: enqueueing still works and the worker creates the
  record.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

import tasktrail
from tasktrail.models import Task
from tests.conftest import IN_CI, reachable
from tests.testapp import tasks

from .conftest import WORKER_APPNAME, WORKER_PYTHONPATH, WorkerProcess, unique_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]


def finished(task_ids: list[str], timeout: float) -> dict[str, str]:
    """Wait until every task is done; return each task's state."""
    deadline = time.monotonic() + timeout
    while True:
        found = dict(Task.objects.filter(task_id__in=task_ids).values_list("task_id", "state"))
        done = {k: v for k, v in found.items() if v in {"SUCCESS", "FAILURE", "REVOKED", "LOST"}}
        if len(done) == len(task_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def kill_connections() -> int:
    """End the workers' connections to the test database, as a failover would (not this
    process's: its other threads' connections would break the tests that follow)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WORKER_APPNAME],
        )
        (killed,) = cursor.fetchone()
    return int(killed)


def test_database_connections_killed_while_tasks_finish_lose_no_final_state(
    start_worker: StartWorker,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("kills PostgreSQL connections; run with TT_DB=postgres")
    queue = unique_queue("pgkill")
    worker = start_worker("pgkill", queue)
    results = [tasks.add.apply_async((i, i), queue=queue) for i in range(400)]
    ids = [r.id for r in results]
    killed = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        killed += kill_connections()
        if Task.objects.filter(task_id__in=ids, state="SUCCESS").count() == len(ids):
            break
        time.sleep(0.1)
    assert killed > 0
    states = finished(ids, timeout=30)
    assert set(states.values()) == {"SUCCESS"} and len(states) == len(ids)
    assert [tasktrail.get(r.id).result for r in results] == [2 * i for i in range(400)]
    # The kills did hit the write path, which kept its rows and wrote them again.
    assert "flush failed; keeping" in worker.log_path.read_text()


class RedisServer:
    """A redis-server of the test's own, persisting to disk so a restart keeps the queue."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                pytest.fail("private redis-server did not start")
            time.sleep(0.05)
        return proc

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.proc = self._start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed; this test restarts a broker of its own"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_broker_restarted_under_load_every_task_ends_with_the_right_status(
    start_worker: StartWorker, private_redis: RedisServer
) -> None:
    """Every task a worker got ends with its true state; one the broker dropped stays PENDING.

    Two faults belong to Celery's Redis transport (kombu 5.7), not to tasktrail, and a
    deployment meets them too: a worker holding unacknowledged messages when the
    connection drops can exit with "Unrecoverable error" (so the test restarts it, as
    a process supervisor would), and a message popped just before the server stops is
    gone before any worker sees it. So the workers' logs witness what ran, and the
    broker's queues what still can.
    """
    broker = Celery("outage", broker=private_redis.url, set_as_current=False)
    broker.conf.update(
        # Publishing rides out the restart rather than failing.
        task_publish_retry_policy={"max_retries": 50, "interval_start": 0.1, "interval_step": 0.1},
        broker_connection_retry_on_startup=True,
    )
    queue = unique_queue("restart")
    env = {"TT_BROKER": private_redis.url, "TT_VISIBILITY_TIMEOUT": "5"}
    workers = [start_worker("broker-restart", queue, env, control=broker)]

    def supervise() -> None:
        if workers[-1].proc.poll() is not None:
            workers.append(start_worker("broker-restart", queue, env, control=broker))

    sent: list[str] = []

    def send() -> None:
        for _ in range(300):
            sent.append(broker.send_task("tests.testapp.tasks.sleepy", (0.01,), queue=queue).id)
            time.sleep(0.01)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.5)
    private_redis.restart()
    sender.join(60)
    assert len(sent) == 300
    states = settled(sent, workers, supervise, private_redis, queue, timeout=90)
    received, succeeded = ids_logged(workers, "received"), ids_logged(workers, "succeeded")
    stored = {state: {k for k, v in states.items() if v == state} for state in set(states.values())}
    assert len(states) == 300 and set(stored) <= {"SUCCESS", "PENDING", "LOST"}
    assert stored["SUCCESS"] == succeeded
    assert not stored.get("PENDING", set()) & received
    assert stored.get("LOST", set()) <= received - succeeded
    assert len(succeeded) >= 290, f"the restart dropped {300 - len(succeeded)} messages"
    assert {tasktrail.get(task_id).result for task_id in succeeded} == {"woke"}


def ids_logged(workers: list[WorkerProcess], event: str) -> set[str]:
    """Task ids the workers' logs say were ``received`` or ``succeeded``."""
    pattern = re.compile(rf"Task [\w.]+\[([0-9a-f-]+)\] {event}")
    return {i for worker in workers for i in pattern.findall(worker.log_path.read_text())}


def settled(
    task_ids: list[str],
    workers: list[WorkerProcess],
    supervise: Callable[[], None],
    server: RedisServer,
    queue: str,
    timeout: float,
) -> dict[str, str]:
    """Wait until nothing can change: the broker holds no message and what ran is done."""
    import redis

    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + timeout
    while True:
        supervise()
        states = finished(task_ids, timeout=0)
        waiting = sum(client.llen(key) for key in client.keys(f"{queue}*"))
        unacked = client.hlen("unacked")
        done = {k for k, v in states.items() if v in {"SUCCESS", "LOST"}}
        if (not waiting and not unacked and ids_logged(workers, "received") <= done) or (
            time.monotonic() > deadline
        ):
            return states
        time.sleep(0.2)


def test_enqueue_succeeds_while_the_store_is_unavailable(worker: object) -> None:
    # A web process whose database is unreachable: nothing listens on port 1 (PostgreSQL),
    # no such directory (SQLite).
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGPORT": "1",
        "TT_DB_NAME": "/nonexistent/tasktrail.sqlite3",
        "PYTHONPATH": WORKER_PYTHONPATH,
    }
    code = "import django; django.setup(); from tests.testapp import tasks; "
    code += "print(tasks.add.delay(20, 22).id)"
    sender = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert sender.returncode == 0, sender.stderr
    assert "final flush failed" in sender.stderr
    task_id = sender.stdout.split()[-1]
    record = wait_for(task_id, lambda r: r.state == "SUCCESS")
    assert (record.result, record.name, record.args) == (42, "tests.testapp.tasks.add", [20, 22])
