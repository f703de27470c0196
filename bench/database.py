"""A fresh store per scenario, and the counts that show results really landed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.scenarios import Scenario


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


def recreate(scenario: Scenario) -> None:
    """Drop and create the scenario's database; call before Django connects to it."""
    if scenario.store == "postgres":
        recreate_postgres(os.environ.get("BENCH_PG_NAME", "tasktrail_bench"))
    elif scenario.store == "sqlite":
        path = os.environ.get("BENCH_SQLITE_PATH", "/tmp/tasktrail-bench.sqlite3")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)


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
    if scenario.store == "none":
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def clear(scenario: Scenario) -> None:
    """Empty the task tables (between the enqueue-only and the end-to-end phase)."""
    if scenario.store == "none":
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
    """Rows of the scenario's task table in ``state`` (0 for the baseline)."""
    if scenario.success_table is None:
        return 0
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {scenario.success_table} WHERE {scenario.state_column} = %s",
            [state],
        )
        return int(cursor.fetchone()[0])


def history_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM tasktrail_transition")
        return int(cursor.fetchone()[0])
