"""System checks: settings that break tasktrail under load, and task options that
tasktrail would read wrongly or not at all (a mistyped ``tasktrail_*`` option is
otherwise ignored without a word)."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from . import options


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
    return _check_sqlite(settings.DATABASE) + _check_spool()


def _check_spool() -> list[checks.CheckMessage]:
    """The spool is where a process that must exit during a database outage puts the
    rows it could not write; a directory it cannot write to turns that outage into lost
    states, silently, at the worst moment. Creating the directory and a file in it is
    what the spool itself does on first use, so the check has no side effect a worker
    would not have anyway."""
    from .store import spool

    where = spool.directory()
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".check-"):
            pass
    except OSError as exc:
        return [
            checks.Warning(
                f"tasktrail cannot write to its spool directory {str(where)!r}: {exc.strerror}. "
                "A worker that exits during a database outage would lose the states it holds.",
                hint="Set TASKTRAIL['SPOOL_DIR'] to a directory the worker's user can write.",
                id="tasktrail.W003",
            )
        ]
    return []


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


@checks.register()
def check_task_options(**_: Any) -> list[checks.CheckMessage]:
    """Every ``tasktrail_*`` attribute of the Celery app's tasks is a known option with a
    value tasktrail can read (``tasktrail.E003``, ``tasktrail.E004``)."""
    from celery import current_app

    try:
        _import_task_modules(current_app)
    except Exception as exc:
        return [
            checks.Warning(
                f"the Celery app's task modules could not be imported to check their "
                f"tasktrail options: {exc!r}",
                id="tasktrail.W002",
            )
        ]
    found: list[checks.CheckMessage] = []
    for name, task in sorted(current_app.tasks.items()):
        found += _check_task(name, task)
    return found


def _import_task_modules(app: Any) -> None:
    """The task modules a worker imports: each app's ``tasks`` (what
    ``app.autodiscover_tasks()`` finds) and Celery's ``imports`` and ``include``.

    Not ``app.loader.import_default_modules()``: its signal makes Celery's Django fixup
    run every system check again, this one included.
    """
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tasks")
    for module in app.loader.default_modules:
        app.loader.import_task_module(module)


def _own_attributes(task: Any) -> Iterator[tuple[str, Any]]:
    """The ``tasktrail_*`` attributes the task's own classes (and the task) set."""
    seen: set[str] = set()
    for namespace in (vars(task), *(vars(k) for k in type(task).__mro__)):
        for attribute, value in namespace.items():
            if attribute.startswith(options.PREFIX) and attribute not in seen:
                seen.add(attribute)
                yield attribute, value


def _check_task(name: str, task: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for attribute, value in _own_attributes(task):
        if attribute not in options.TASK_OPTIONS:
            close = difflib.get_close_matches(attribute, options.TASK_OPTIONS, n=1, cutoff=0.6)
            guess = f"; did you mean {close[0]}?" if close else ""
            found.append(
                checks.Error(
                    f"task {name!r} sets {attribute}, which is not a tasktrail option{guess}",
                    hint=f"tasktrail's task options: {', '.join(sorted(options.TASK_OPTIONS))}",
                    obj=name,
                    id="tasktrail.E003",
                )
            )
            continue
        problem = _VALIDATORS[attribute](value)
        if problem:
            found.append(
                checks.Error(f"task {name!r}: {attribute} {problem}", obj=name, id="tasktrail.E004")
            )
    return found


def _show_result(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return f"must be True or False, got {value!r} (tasktrail hides its outcome meanwhile)"


def _expires(succeeded: bool) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        from . import conf

        try:
            conf.expires_after(succeeded, None, None, value)
        except ImproperlyConfigured as exc:
            return f"is not a duration: {exc}"
        return ""

    return check


def _retry(value: Any) -> str:
    from . import conf, retries

    if value is None or value is False:
        return ""
    try:
        retries.parse(value, conf.get().RETRY)
    except (ValueError, ImportError) as exc:
        return f"is not a retry policy: {exc}"
    return ""


_VALIDATORS: dict[str, Callable[[Any], str]] = {
    options.SHOW_RESULT: _show_result,
    options.RESULT_EXPIRES: _expires(True),
    options.FAILURE_EXPIRES: _expires(False),
    options.RETRY: _retry,
}
