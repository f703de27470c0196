"""Lost workers, with real processes: a worker is SIGKILLed (main process and pool
together) while its task runs, and another worker, which keeps heartbeating, settles
the task: ``LOST``, or a new attempt for tasks that opted in.

And the other side of the rule: workers cut off from PostgreSQL by a proxy (refused,
frozen) for a while are not dead, and none of their tasks is settled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import WorkerLostError
from celery.result import AsyncResult
from django.db import connection

import tasktrail
from tasktrail.models import Worker
from tests.faults import FaultProxy
from tests.testapp import tasks
from tests.testapp.celeryapp import app

from .conftest import (
    FAULT_ENV,
    FAULT_LOST_AFTER,
    SESSION_WORKERS,
    WorkerProcess,
    unique_queue,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

StartWorker = Callable[..., WorkerProcess]
FAULT_INTERVAL = float(FAULT_ENV["TT_HEARTBEAT_INTERVAL"])
# The documented bound (docs/failures.md): LOST_AFTER + 3 heartbeat intervals after the
# kill, or LOST_AFTER + 1 interval after the checker's own database trouble ended,
# whichever is later; a second more for the write (20 ms buffer) and the polling.
SETTLED_WITHIN = FAULT_LOST_AFTER + 3 * FAULT_INTERVAL + 1
SETTLED_AFTER_TROUBLE = FAULT_LOST_AFTER + FAULT_INTERVAL + 1


def kill_while_running(start_worker: StartWorker, task: Any, *args: object) -> tuple[str, str]:
    """Start a watcher and a victim, run ``task`` on the victim, SIGKILL the victim.

    Returns the task id and the victim's hostname once the kill is done.
    """
    start_worker("watcher", unique_queue("watcher"))
    queue = unique_queue("victim")
    victim = start_worker("victim", queue)
    result = task.apply_async(args, queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    return result.id, victim.hostname


def test_a_task_on_a_killed_worker_becomes_lost_with_the_reason(
    start_worker: StartWorker,
) -> None:
    task_id, victim = kill_while_running(start_worker, tasks.sleepy, 60)
    killed = time.monotonic()
    record = wait_for(task_id, lambda r: r.state == "LOST", timeout=SETTLED_WITHIN + 10)
    assert time.monotonic() - killed < SETTLED_WITHIN
    assert record.phase == "done" and record.finished_at and record.expires_at
    assert record.error is not None
    assert record.error.type == "billiard.exceptions.WorkerLostError"
    assert f"worker {victim} (pid " in record.error.message
    assert "stopped heartbeating at" in record.error.message
    # Celery's view: a failure that raises the error, as for a lost pool process.
    result = AsyncResult(task_id)
    assert result.state == "FAILURE" and result.ready() and result.failed()
    with pytest.raises(WorkerLostError, match="stopped heartbeating"):
        result.get(timeout=1)
    [attempt] = tasktrail.attempts(task_id)
    assert (attempt.number, attempt.state, attempt.worker) == (1, "LOST", victim)
    assert attempt.started_at and attempt.finished_at and attempt.worker_pid


def test_acks_late_task_is_delivered_again_and_succeeds_as_attempt_two(
    start_worker: StartWorker,
) -> None:
    short = {"TT_VISIBILITY_TIMEOUT": "5"}
    watcher = start_worker("watcher", unique_queue("watcher"), short)
    queue = unique_queue("victim")
    victim = start_worker("victim", queue, short)
    result = tasks.sleepy_acks_late.apply_async((2,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    # The broker hands the unacknowledged message out again: Redis after the visibility
    # timeout, RabbitMQ when the dead consumer's connection closes.
    app.control.add_consumer(queue, destination=[watcher.hostname], reply=True)
    assert result.get(timeout=30) == "woke"
    record = tasktrail.get(result.id)
    assert (record.state, record.attempt, record.worker) == ("SUCCESS", 2, watcher.hostname)
    first, second = tasktrail.attempts(result.id)
    assert (first.number, first.worker) == (1, victim.hostname)
    assert (second.number, second.state, second.worker) == (2, "SUCCESS", watcher.hostname)
    # RETRY if the lost-worker check settled it before the broker delivered it again;
    # else the run reported nothing, and the next attempt's start ended it as lost.
    assert first.state in {"RETRY", "LOST"}
    if first.state == "RETRY":
        assert first.error and "the broker will deliver the task again" in first.error.message
    else:
        assert first.error and "reported no outcome" in first.error.message


def test_retry_on_worker_lost_task_is_sent_again_and_succeeds_as_attempt_two(
    start_worker: StartWorker,
) -> None:
    task_id, victim = kill_while_running(start_worker, tasks.sleepy_retry_on_lost, 1)
    waiting = wait_for(task_id, lambda r: r.state == "RETRY", timeout=SETTLED_WITHIN + 10)
    assert waiting.phase == "waiting" and waiting.next_retry_at is not None
    assert waiting.error and "sent again as attempt 2 (retry_on_worker_lost)" in (
        waiting.error.message
    )
    queue = tasktrail.get(task_id).queue
    replacement = start_worker("replacement", queue)
    record = wait_for(task_id, lambda r: r.state == "SUCCESS", timeout=30)
    assert (record.attempt, record.worker, record.result) == (2, replacement.hostname, "woke")
    first, second = tasktrail.attempts(task_id)
    assert (first.state, first.worker) == ("RETRY", victim)
    assert first.error and first.error.type == "billiard.exceptions.WorkerLostError"
    assert (second.state, second.worker) == ("SUCCESS", replacement.hostname)


def test_a_worker_restarted_under_the_same_name_settles_its_previous_tasks(
    start_worker: StartWorker,
) -> None:
    # No other worker runs, and LOST_AFTER is long: only the restart can tell.
    queue = unique_queue("restart")
    patient = {"TT_LOST_AFTER": "600"}
    victim = start_worker("restart", queue, patient)
    result = tasks.sleepy.apply_async((60,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    victim.kill()
    start_worker("restart", queue, patient, hostname=victim.hostname)
    record = wait_for(result.id, lambda r: r.state == "LOST", timeout=5)
    assert record.error and f"worker {victim.hostname} (pid " in record.error.message
    assert "restarted at" in record.error.message


def test_workers_record_heartbeats_with_the_tasks_in_hand(start_worker: StartWorker) -> None:
    queue = unique_queue("beating")
    worker = start_worker("beating", queue)
    result = tasks.sleepy.apply_async((3,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    time.sleep(1)
    row = Worker.objects.get(hostname=worker.hostname)
    assert row.pid == worker.proc.pid and row.stopped_at is None
    assert row.active == 1 and row.started_at < row.last_seen < row.silent_after
    assert result.get(timeout=20) == "woke"
    worker.stop()
    row = Worker.objects.get(hostname=worker.hostname)
    assert row.stopped_at is not None and row.silent_after == row.stopped_at


# -- Outages are not deaths -----------------------------------------------------------


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    """A proxy in front of the test's PostgreSQL, for workers started with ``behind()``.

    Tests ask for it before ``start_worker``, so it outlives their workers' farewells.
    """
    if connection.vendor != "postgresql":
        pytest.skip(
            "puts a TCP proxy between workers and PostgreSQL (SQLite is a file, there is "
            "no connection to cut): run with TT_DB=postgres"
        )
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    yield proxy
    proxy.close()


def behind(proxy: FaultProxy, **env: str) -> dict[str, str]:
    return {"PGPORT": str(proxy.port), **env}


def outage(proxy: FaultProxy, fault: str, seconds: float) -> None:
    getattr(proxy, fault)()
    time.sleep(seconds)
    proxy.heal()


def ran_once_and_succeeded(task_id: str, runs: Path) -> None:
    """The task ended SUCCESS as attempt 1, was never LOST or sent again, and ran once."""
    record = wait_for(task_id, lambda r: r.state == "SUCCESS", timeout=60)
    assert (record.attempt, record.result) == (1, "woke")
    assert [t.state for t in tasktrail.history(task_id)] == ["PENDING", "STARTED", "SUCCESS"]
    assert runs.read_text() == "ran\n"


@pytest.mark.parametrize("fault", ["refuse", "freeze"])
def test_an_outage_shorter_than_lost_after_settles_no_task_of_a_healthy_worker(
    pg_proxy: FaultProxy, start_worker: StartWorker, tmp_path: Path, fault: str
) -> None:
    """The watcher is connected directly and checks; the healthy worker is cut off for
    90 % of LOST_AFTER. Its heartbeat interval is long (LOST_AFTER / 2) so the outage
    with the heartbeats around it spans more than LOST_AFTER, as in production."""
    start_worker("watcher", unique_queue("watcher"))
    queue = unique_queue("healthy")
    start_worker("healthy", queue, behind(pg_proxy, TT_HEARTBEAT_INTERVAL="1.5"))
    runs = tmp_path / "runs"
    result = tasks.counts_runs.apply_async((str(runs), 8), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    outage(pg_proxy, fault, 0.9 * FAULT_LOST_AFTER)
    ran_once_and_succeeded(result.id, runs)


@pytest.fixture
def second_pg_proxy(pg_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Another proxy to the same PostgreSQL, to cut workers off one by one."""
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    yield proxy
    proxy.close()


@pytest.fixture
def whole_fleet_cut_off() -> Iterator[None]:
    """Pause the session's worker (when an earlier test started it) for the test.

    These outages cut the whole fleet off, so no healthy checker is left; one that is
    would rightly settle the cut-off workers' tasks once LOST_AFTER passed
    (docs/explanation/liveness.md)."""
    paused = []
    for proc in SESSION_WORKERS:
        if proc.poll() is None:
            # The worker runs in a session of its own: its main pid leads the group.
            os.killpg(proc.pid, signal.SIGSTOP)
            paused.append(proc.pid)
    yield
    for pid in paused:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)


def running_counted(
    start_worker: StartWorker, proxies: list[FaultProxy], seconds: float, tmp_path: Path
) -> list[tuple[WorkerProcess, str, Path]]:
    """One worker behind each proxy, each running ``counts_runs`` for ``seconds``."""
    # All started before any task is sent: starting a worker can take longer than a task.
    frozen = [start_worker("frozen", unique_queue("frozen"), behind(p)) for p in proxies]
    started = []
    for i, worker in enumerate(frozen):
        runs = tmp_path / f"runs-{i}"
        result = tasks.counts_runs.apply_async((str(runs), seconds), queue=worker.queue)
        started.append((worker, result.id, runs))
    for _, task_id, _ in started:
        wait_for(task_id, lambda r: r.state == "STARTED")
    return started


def none_settled(started: list[tuple[WorkerProcess, str, Path]]) -> None:
    for worker, task_id, runs in started:
        ran_once_and_succeeded(task_id, runs)
        assert "settled" not in worker.log_path.read_text()


@pytest.mark.parametrize("seconds", [1.5 * FAULT_LOST_AFTER])
@pytest.mark.usefixtures("whole_fleet_cut_off")
def test_workers_behind_a_freeze_longer_than_lost_after_settle_none_of_their_tasks(
    pg_proxy: FaultProxy, start_worker: StartWorker, tmp_path: Path, seconds: float
) -> None:
    """Both workers (one of them holds the check) lose the database together, for longer
    than LOST_AFTER. When it answers again every heartbeat row is older than the
    silence deadline, but nobody died: neither settles its own task nor the other's."""
    started = running_counted(start_worker, [pg_proxy, pg_proxy], seconds + 6, tmp_path)
    outage(pg_proxy, "freeze", seconds)
    none_settled(started)


@pytest.mark.parametrize("seconds", [1.5 * FAULT_LOST_AFTER, 3 * FAULT_LOST_AFTER])
@pytest.mark.usefixtures("whole_fleet_cut_off")
def test_after_an_outage_the_check_waits_for_the_workers_that_shared_it(
    pg_proxy: FaultProxy,
    second_pg_proxy: FaultProxy,
    start_worker: StartWorker,
    tmp_path: Path,
    seconds: float,
) -> None:
    """Two workers frozen together for longer than LOST_AFTER; the database answers one of
    them a second before the other (reconnections, a pool, a route coming back). The
    first, whichever holds the check, finds the other's row past its silence deadline,
    but it saw the outage itself: it waits LOST_AFTER, and the other heartbeats meanwhile.
    """
    proxies = [pg_proxy, second_pg_proxy]
    started = running_counted(start_worker, proxies, seconds + 8, tmp_path)
    for proxy in proxies:
        proxy.freeze()
    time.sleep(seconds)
    pg_proxy.heal()
    time.sleep(1)
    second_pg_proxy.heal()
    none_settled(started)


def test_a_killed_workers_task_is_lost_within_the_bound_after_the_checkers_outage(
    pg_proxy: FaultProxy, start_worker: StartWorker
) -> None:
    """The checker holds back after its own outage, but not forever."""
    start_worker("checker", unique_queue("checker"), behind(pg_proxy))
    queue = unique_queue("victim")
    victim = start_worker("victim", queue)
    result = tasks.sleepy.apply_async((60,), queue=queue)
    wait_for(result.id, lambda r: r.state == "STARTED")
    pg_proxy.refuse()
    victim.kill()
    killed = time.monotonic()
    time.sleep(FAULT_LOST_AFTER / 2)
    pg_proxy.heal()
    healed = time.monotonic()
    record = wait_for(result.id, lambda r: r.state == "LOST", timeout=30)
    settled = time.monotonic()
    assert settled - killed < SETTLED_WITHIN or settled - healed < SETTLED_AFTER_TROUBLE
    assert record.error and f"worker {victim.hostname} (pid " in record.error.message
