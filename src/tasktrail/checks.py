"""System checks for settings that break tasktrail under load."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections


@checks.register()
def check_settings(**_: Any) -> list[checks.CheckMessage]:
    from . import conf

    try:
        settings = conf.get()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="tasktrail.E001")]
    if settings.DATABASE not in connections.settings:
        return [
            checks.Error(
                f"TASKTRAIL['DATABASE'] is {settings.DATABASE!r}, which is not in DATABASES",
                id="tasktrail.E002",
            )
        ]
    return _check_sqlite(settings.DATABASE)


def _check_sqlite(alias: str) -> list[checks.CheckMessage]:
    db = connections.settings[alias]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        return []
    options = db.get("OPTIONS", {})
    if options.get("transaction_mode") == "IMMEDIATE" and "journal_mode=wal" in str(
        options.get("init_command", "")
    ).lower().replace(" ", ""):
        return []
    return [
        checks.Warning(
            "tasktrail on SQLite with several processes needs WAL and immediate transactions, "
            "or writers fail with 'database is locked'.",
            hint="DATABASES[...]['OPTIONS'] = {'transaction_mode': 'IMMEDIATE', 'timeout': 20, "
            "'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;'}",
            id="tasktrail.W001",
        )
    ]
