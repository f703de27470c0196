"""Smoke test of ``python -m bench``'s newer scenarios, with real workers.

Runs the command as documented (each scenario in a process of its own, a real prefork
worker, the run's own broker, queue and databases) with a few tasks, and checks what each
scenario's store holds afterwards, never a timing: Celery's Redis backend and tasktrail
through signals stored every task; tasktrail through signals recorded PENDING, STARTED
and SUCCESS but no result; the busy task burned its CPU; ``--trace-flushes`` counted
each event where it was built; the preloaded store was loaded once, kept, and left as
loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench import database
from tests import brokers
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
TASKS = 20
WARMUP = 5
PRELOAD = 1000

# A scenario's run starts a worker and migrates a database: about 10 s each on a quiet
# machine, a minute or more on a loaded one.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1200),
    # The bench brings its own Redis broker whatever the pass: the RabbitMQ pass would
    # run the same thing again, for minutes.
    pytest.mark.skipif(
        os.environ.get("TT_BROKER") == "rabbitmq",
        reason="the bench uses its own Redis broker; the PostgreSQL pass runs it",
    ),
]


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """The run's two PostgreSQL databases (named after the test database), dropped after."""
    require("Redis", "127.0.0.1", 6379)
    require("PostgreSQL", os.environ.get("PGHOST", "127.0.0.1"), 5432)
    prefix = os.environ.get("TT_TEST_DB_NAME", "test_tasktrail")
    names = (f"{prefix}_bench", f"{prefix}_bench_preload")
    yield names
    import psycopg
    from psycopg import sql

    with psycopg.connect(**database.connect_kwargs("postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _bench(tmp_path: Path, pg: tuple[str, str], only: str, *extra: str) -> dict[str, Any]:
    out = tmp_path / f"bench-{uuid.uuid4().hex[:6]}.json"
    command = [sys.executable, "-m", "bench", "--tasks", str(TASKS), "--warmup", str(WARMUP)]
    command += ["--only", only, "--wait-idle", "0", "--retry-noisy", "0"]
    command += ["--broker", brokers.url(), "--redis", brokers.spare_redis()]
    command += ["--pg-db", pg[0], "--preload-db", pg[1], "--preload-tasks", str(PRELOAD)]
    command += ["--workdir", str(tmp_path), "--json", str(out), *extra]
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "BENCH_QUEUE": f"bench-test-{tag}",
        "BENCH_COUNTER_KEY": f"bench-test-{tag}:done",
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in only.split(","):
        assert name in done.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _query(dbname: str, sql: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(**database.connect_kwargs(dbname)) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def test_celerys_backends_signals_and_the_busy_task(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    # tasktrail-signals last: its store is still there afterwards, to look into.
    only = "celery-ignore,celery-null,celery-redis,celery-ignore-5ms,tasktrail-signals"
    result = _bench(tmp_path, databases, only, "--trace-flushes")
    summary = result["summary"]
    assert summary["celery-redis"]["success_rows"] == TASKS
    assert summary["celery-null"]["success_rows"] is None
    assert summary["tasktrail-signals"]["success_rows"] == TASKS
    assert summary["tasktrail-signals"]["pending_rows"] == TASKS
    # PENDING, STARTED, SUCCESS for each (RECEIVED too for a task that waited).
    assert summary["tasktrail-signals"]["history_per_task"] >= 3.0
    # The busy task's pool processes spent at least its 5 ms of CPU on each task.
    assert summary["celery-ignore-5ms"]["cpu_ms_per_task"]["worker_pool"] >= 5.0
    assert summary["celery-ignore"]["cpu_ms_per_task"]["worker_pool"] < 5.0
    # Through signals: when each task was sent, started and finished, with Celery's result
    # ignored (the value is not kept: tests/integration/test_celery_view.py).
    found = _query(
        databases[0],
        "SELECT count(*), count(sent_at), count(started_at), count(finished_at), "
        "bool_and(ignore_result) FROM tasktrail_task WHERE state = 'SUCCESS'",
    )
    stored = TASKS + WARMUP
    assert found == (stored, stored, stored, stored, True)
    # --trace-flushes timed each event builder where it ran: the producer's timed phase
    # sent TASKS, and the pool processes started and finished every task they ran.
    (traced,) = [r["flushes"] for r in result["runs"] if r["scenario"] == "tasktrail-signals"]
    assert traced["producer"]["published_calls"] == TASKS
    assert traced["pool"]["started_calls"] == traced["pool"]["outcome_calls"] == stored
    assert traced["pool"]["rows"] >= stored and traced["pool"]["started_cpu_us_per_call"] > 0


def test_the_preloaded_store_is_loaded_once_and_left_as_loaded(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    result = _bench(tmp_path, databases, "tasktrail-postgres-10m", "--repeat", "2")
    runs = result["runs"]
    assert [r["success_rows"] for r in runs] == [TASKS, TASKS]
    loaded = {r["preloaded"]["loaded_at"] for r in runs}
    assert len(loaded) == 1, "the second run loaded the data set again"
    assert runs[0]["preloaded"]["spec"]["tasks"] == PRELOAD
    # Each run deleted what it wrote: the data set is as loaded.
    tasks, newest = _query(databases[1], "SELECT count(*), max(updated_at) FROM tasktrail_task")
    assert tasks == PRELOAD
    assert newest == datetime.fromisoformat(runs[0]["preloaded"]["newest"])
    (orphans,) = _query(
        databases[1],
        "SELECT count(*) FROM tasktrail_transition t WHERE NOT EXISTS "
        "(SELECT 1 FROM tasktrail_task k WHERE k.task_id = t.task_id)",
    )
    assert orphans == 0
