"""A fresh store per scenario, and the counts that show results really landed.

A scenario with ``preload`` keeps its store between runs instead: a PostgreSQL database
filled once by :mod:`bench.bulkload` and reused while it holds the same data set (as
``bench.dashboard`` does). Each run deletes what it wrote, by the rows' ``updated_at``,
later than any loaded row, so the data set stays as loaded.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scenarios import Scenario

#: A preloaded data set older than this is loaded again: its times are relative to the
#: load, and its oldest finished tasks expire 31 days after they finished, about a day
#: after the load; the worker's cleanup would then delete them during a run.
PRELOAD_MAX_AGE = timedelta(hours=20)
#: Celery's Redis backend keeps each result under this prefix.
REDIS_RESULT_PREFIX = "celery-task-meta-"

#: The newest ``updated_at`` of the preloaded data set: rows after it are a run's own.
_preloaded_until: datetime | None = None


def _log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def connect_kwargs(dbname: str) -> dict[str, Any]:
    """``psycopg.connect()`` arguments for ``dbname``, from the ``PG*`` variables."""
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "password": os.environ.get("PGPASSWORD") or None,
        "dbname": dbname,
    }


def django_postgres(name: str, **extra: Any) -> dict[str, Any]:
    """A ``DATABASES`` entry for ``name``, from the same variables."""
    found = connect_kwargs(name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": found["host"],
        "PORT": found["port"],
        "USER": found["user"],
        "PASSWORD": found["password"] or "",
        **extra,
    }


def _pg_name() -> str:
    return os.environ.get("BENCH_PG_NAME", "tasktrail_bench")


def recreate(scenario: Scenario) -> None:
    """Drop and create the scenario's database; call before Django connects to it.

    A preloaded store is dropped only when it does not hold the data set asked for.
    """
    if scenario.preload:
        _keep_or_drop_preloaded(scenario)
    elif scenario.store == "postgres":
        recreate_postgres(_pg_name())
    elif scenario.store == "sqlite":
        path = os.environ.get("BENCH_SQLITE_PATH", "/tmp/tasktrail-bench.sqlite3")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)
    elif scenario.store == "redis":
        _clear_redis()


def recreate_postgres(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**connect_kwargs("postgres"), autocommit=True) as conn:
        # FORCE ends connections a previous, interrupted run may have left.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(scenario: Scenario) -> None:
    if scenario.store in ("none", "redis"):
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if scenario.preload:
        _preload(scenario)


def clear(scenario: Scenario) -> None:
    """Empty the task tables (between the enqueue-only and the end-to-end phase)."""
    if scenario.preload:
        forget_run(scenario)
        return
    if scenario.store == "none":
        return
    if scenario.store == "redis":
        _clear_redis()
        return
    from django.core.management.color import no_style
    from django.db import connection

    tables = [t for t in connection.introspection.table_names() if _is_task_table(t)]
    statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
    connection.ops.execute_sql_flush(statements)
    connection.close()


def _is_task_table(table: str) -> bool:
    return table.startswith(("tasktrail_", "django_celery_results_"))


def count(scenario: Scenario, state: str) -> int:
    """Tasks the scenario's store holds in ``state`` (0 where it cannot be asked); in a
    preloaded store, those of this run only."""
    if scenario.store == "redis":
        return _count_redis(state)
    if scenario.success_table is None:
        return 0
    from django.db import connection

    sql = f"SELECT COUNT(*) FROM {scenario.success_table} WHERE {scenario.state_column} = %s"
    params: list[Any] = [state]
    if scenario.preload:
        # Through tasktrail_task_updated: the newest rows only, not the 10 M loaded.
        sql += " AND updated_at > %s"
        params.append(_preloaded_until)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def history_mark() -> int:
    """The newest history row's id: :func:`history_since` counts the rows after it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM tasktrail_transition")
        return int(cursor.fetchone()[0])


def history_since(mark: int) -> int:
    """History rows written after :func:`history_mark` returned ``mark`` (by the primary
    key: no scan of a preloaded table's millions of rows)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM tasktrail_transition WHERE id > %s", [mark])
        return int(cursor.fetchone()[0])


# --- Celery's Redis result backend -----------------------------------------------------


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15"))


def _result_keys(client: Any) -> list[bytes]:
    return list(client.scan_iter(match=REDIS_RESULT_PREFIX + "*", count=1000))


def _clear_redis() -> None:
    """Delete the results Celery's Redis backend stored (only its keys, in its database)."""
    client = _redis()
    keys = _result_keys(client)
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def _count_redis(state: str) -> int:
    client = _redis()
    keys = _result_keys(client)
    found = 0
    for start in range(0, len(keys), 1000):
        for value in client.mget(keys[start : start + 1000]):
            if value is not None and json.loads(value).get("status") == state:
                found += 1
    return found


# --- a preloaded store ---------------------------------------------------------------------


def preload_spec(scenario: Scenario) -> Any:
    """The data set a preloaded scenario runs on (``--preload-tasks`` may shrink it)."""
    from bench import bulkload

    tasks = int(os.environ.get("BENCH_PRELOAD_TASKS") or scenario.preload)
    return bulkload.Spec(tasks)


def _stored_dataset(name: str) -> dict[str, Any] | None:
    import psycopg

    from bench import bulkload

    try:
        with psycopg.connect(**connect_kwargs(name), autocommit=True) as conn:
            return bulkload.loaded(conn.cursor())
    except psycopg.OperationalError:
        return None


def _usable(stored: dict[str, Any] | None, spec: Any) -> bool:
    if stored is None or stored.get("spec") != spec.signature() or not stored.get("newest"):
        return False
    age = datetime.now(UTC) - datetime.fromisoformat(stored["loaded_at"])
    return age < PRELOAD_MAX_AGE


def _keep_or_drop_preloaded(scenario: Scenario) -> None:
    name, spec = _pg_name(), preload_spec(scenario)
    stored = _stored_dataset(name)
    if _usable(stored, spec):
        assert stored is not None
        _log(f"store {name}: {spec.tasks:,} tasks loaded at {stored['loaded_at']} (kept)")
        return
    _log(f"store {name}: loading {spec.tasks:,} tasks (bench.bulkload; kept for later runs)")
    recreate_postgres(name)


def _preload(scenario: Scenario) -> None:
    """Load the data set into a fresh database; then remove what an earlier, interrupted
    run may have left."""
    global _preloaded_until
    from django.db import connection

    from bench import bulkload

    spec = preload_spec(scenario)
    with connection.cursor() as cursor:
        if bulkload.loaded(cursor) is None:
            times = bulkload.load(cursor, spec, progress=_log)
            bulkload.record(cursor, spec, times)
            _log("loaded in {total:.0f} s".format(**times))
        stored = bulkload.loaded(cursor)
    if stored is None or not stored.get("newest"):
        raise RuntimeError(f"store {_pg_name()}: no data set recorded after loading")
    _preloaded_until = datetime.fromisoformat(stored["newest"])
    forget_run(scenario)


def preloaded(scenario: Scenario) -> dict[str, Any] | None:
    """What a preloaded scenario ran on (for the report), ``None`` for the others."""
    if not scenario.preload:
        return None
    from django.db import connection

    from bench import bulkload

    with connection.cursor() as cursor:
        stored = bulkload.loaded(cursor)
    return None if stored is None else {"database": _pg_name(), **stored}


def forget_run(scenario: Scenario) -> None:
    """Delete the rows of a preloaded store that no load wrote: a run's own.

    By id through the indexes, history first: ``updated_at`` finds the run's tasks in
    ``tasktrail_task_updated`` (the newest entries), their ids their history rows.
    """
    if not scenario.preload or _preloaded_until is None:
        return
    from django.db import connection, transaction

    from tasktrail.store.sql import HISTORY_TABLE, TASK_TABLE

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT task_id FROM {TASK_TABLE} WHERE updated_at > %s", [_preloaded_until]
        )
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            cursor.execute(f"DELETE FROM {HISTORY_TABLE} WHERE task_id = ANY(%s)", [ids])
            cursor.execute(f"DELETE FROM {TASK_TABLE} WHERE task_id = ANY(%s)", [ids])
    connection.close()
