"""The store: the only code that touches tasktrail's tables.

Writes go through a per-process :class:`~tasktrail.store.buffer.WriteBuffer` and
land as one guarded upsert per flush; reads return frozen records.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import conf, jsoncodec
from ..exceptions import TaskNotFound
from ..records import Progress, TaskError, TaskRecord, Transition
from . import spool, sql, timeouts
from .buffer import HistoryEntry, WriteBuffer
from .db import alias as _alias
from .db import tasks as _tasks
from .expiry import delete_expired
from .schema import COLUMNS, DATETIMES, Row, event

__all__ = [
    "TaskNotFound",
    "close",
    "delete_expired",
    "event",
    "flush",
    "forget",
    "get",
    "get_many",
    "history",
    "on_write",
    "record",
    "sync",
    "versions",
]

logger = logging.getLogger("tasktrail.store")

# SQLite allows 32766 parameters per statement; 500 rows stay well below.
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write(rows: list[Row], history: list[HistoryEntry]) -> None:
    connection = connections[_alias()]
    # Only tasktrail's own threads write (flush, upkeep's replay): bound their waits.
    timeouts.bound(connection)
    try:
        if connection.vendor == "postgresql":
            _write_postgresql(connection, rows, history)
        else:
            _write_generic(connection, rows, history)
    except Exception:
        # A broken connection must not be reused by the next attempt.
        connection.close()
        raise


def _accepted_history(
    rows: list[Row], history: list[HistoryEntry], stored: dict[str, tuple[str, int]]
) -> list[HistoryEntry]:
    """History of the tasks whose stored state is the one this flush folded to."""
    final = {row["task_id"]: (row["state"], row["attempt"]) for row in rows}
    return [h for h in history if stored.get(h[0]) == final[h[0]]]


def _history_values(entry: HistoryEntry) -> tuple[Any, ...]:
    task_id, state, attempt, at, worker, detail = entry
    return (
        task_id,
        state,
        attempt,
        at,
        worker,
        None if detail is None else jsoncodec.dumps(detail),
    )


def _write_generic(
    connection: BaseDatabaseWrapper, rows: list[Row], history: list[HistoryEntry]
) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    stored: dict[str, tuple[str, int]] = {}
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for chunk in _chunks(rows, _CHUNK):
            params = [adapt(row[c]) if c in DATETIMES else row[c] for row in chunk for c in COLUMNS]
            cursor.execute(sql.upsert(len(chunk)), params)
            stored.update((tid, (state, attempt)) for tid, state, attempt in cursor.fetchall())
        for part in _chunks(_accepted_history(rows, history, stored), _CHUNK):
            values = [_history_values(h) for h in part]
            params = [adapt(v) if i == 3 else v for entry in values for i, v in enumerate(entry)]
            cursor.execute(sql.insert_history(len(part)), params)


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _write_postgresql(
    connection: BaseDatabaseWrapper, rows: list[Row], history: list[HistoryEntry]
) -> None:
    import psycopg

    final = {row["task_id"]: (row["state"], row["attempt"]) for row in rows}
    entries = [
        dict(zip(_HISTORY_KEYS, (*_history_values(h), *final[h[0]]), strict=True)) for h in history
    ]
    params = (
        json.dumps(rows, default=_json_default, separators=(",", ":")),
        json.dumps(entries, default=_json_default, separators=(",", ":")),
    )
    with connection.wrap_database_errors:
        connection.ensure_connection()
        # A server-side-binding cursor, whatever Django's setting, so the statement
        # can be prepared once per connection and reused by every flush.
        with psycopg.Cursor(connection.connection) as cursor, _prepared(connection.connection):
            cursor.execute(_postgresql_statement(connection), params, prepare=True)


@contextlib.contextmanager
def _prepared(raw: Any) -> Iterator[None]:
    """Let psycopg prepare the write statement, on a connection where Django turned
    prepared statements off (``prepare_threshold=None``, its default).

    Parsing and planning the 11 KB statement again costs PostgreSQL about 1 ms of CPU
    per flush, more than writing the rows; the user's own queries keep Django's
    setting, as the threshold is restored at once.
    """
    threshold = raw.prepare_threshold
    if threshold is None and conf.get().PREPARE_WRITES:
        raw.prepare_threshold = 0
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


_HISTORY_KEYS = (*sql.HISTORY_COLUMNS, "final_state", "final_attempt")


@functools.cache
def _column_types(alias: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ..models import Task, Transition

    connection = connections[alias]

    def types(model: Any, columns: Sequence[str]) -> tuple[str, ...]:
        fields = {f.column: f for f in model._meta.concrete_fields}
        return tuple(str(fields[c].db_type(connection)) for c in columns)

    return types(Task, COLUMNS), types(Transition, sql.HISTORY_COLUMNS)


def _postgresql_statement(connection: BaseDatabaseWrapper) -> str:
    return sql.write_postgresql(*_column_types(connection.alias))


WriteListener = Callable[[list[Row]], None]
_listeners: list[WriteListener] = []


def on_write(listener: WriteListener) -> None:
    """Call ``listener(rows)`` after each successful flush, with the rows it wrote.

    It runs in the flushing thread, with that thread's database connection: it must be
    quick and must not read the store. Its errors are logged, never raised into the
    write path (the rows are written). Idempotent.
    """
    if listener not in _listeners:
        _listeners.append(listener)


def _write_and_tell(rows: list[Row], history: list[HistoryEntry]) -> None:
    _write(rows, history)
    for listener in _listeners:
        try:
            listener(rows)
        except Exception:
            logger.exception("tasktrail: write listener %r failed", listener)


@functools.cache
def _buffer() -> WriteBuffer:
    settings = conf.get()
    return WriteBuffer(
        _write_and_tell,
        settings.flush_seconds,
        settings.MAX_BUFFERED,
        # What the bounded final flush cannot write goes to disk, for a worker to write.
        spill=spool.write,
        close_timeout=settings.FINAL_FLUSH_TIMEOUT.total_seconds(),
    )


def record(row: Row, detail: dict[str, Any] | None = None) -> None:
    """Queue an event for writing; never blocks on the database."""
    _buffer().add(row, detail)


def flush() -> None:
    """Write this process's buffered events now, from the calling thread."""
    _buffer().flush()


def close() -> None:
    """Flush what is left before this process stops, within ``FINAL_FLUSH_TIMEOUT``;
    spools what it cannot write; logs instead of raising."""
    _buffer().close()


def sync(timeout: float = 5.0) -> bool:
    """Wait until this process's buffered events are written."""
    return _buffer().sync(timeout)


def _settle(task_id: str) -> None:
    """Let this process's buffered writes for ``task_id`` land before reading or deleting."""
    if _buffer().pending(task_id):
        _buffer().sync()


def _row(task_id: str) -> Any:
    _settle(task_id)
    return _tasks().filter(task_id=task_id).first()


def get(task_id: str) -> TaskRecord:
    if not isinstance(task_id, str) or not task_id or len(task_id) > 255:
        raise TaskNotFound(str(task_id)[:300])
    row = _row(task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return _record(row)


def get_many(task_ids: Collection[str]) -> dict[str, TaskRecord]:
    """The records of those of ``task_ids`` that are recorded, by id."""
    ids = list(task_ids)
    for task_id in ids:
        _settle(task_id)
    tasks = _tasks()
    return {
        row.task_id: _record(row)
        for chunk in _chunks(ids, _CHUNK)
        for row in tasks.filter(task_id__in=chunk)
    }


def versions(task_ids: Collection[str]) -> dict[str, datetime]:
    """``updated_at`` of those of ``task_ids`` that are recorded: a cheap change check."""
    tasks = _tasks()
    found: dict[str, datetime] = {}
    for chunk in _chunks(list(task_ids), _CHUNK):
        found.update(tasks.filter(task_id__in=chunk).values_list("task_id", "updated_at"))
    return found


def _record(row: Any) -> TaskRecord:
    progress = None
    if row.progress_current is not None:
        progress = Progress(
            current=row.progress_current,
            total=row.progress_total,
            message=row.progress_message,
            meta=row.meta or {},
        )
    error = None
    if row.error_type:
        error = TaskError(row.error_type, row.error_message, row.traceback or None)
    return TaskRecord(
        id=row.task_id,
        name=row.name,
        queue=row.queue,
        state=row.state,
        attempt=row.attempt,
        max_retries=row.max_retries,
        args=row.args,
        kwargs=row.kwargs,
        result=row.result,
        error=error,
        progress=progress,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        root_id=row.root_id,
        group_id=row.group_id,
        worker=row.worker,
        worker_pid=row.worker_pid,
        sent_at=row.sent_at,
        received_at=row.received_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        next_retry_at=row.next_retry_at,
        expires_at=row.expires_at,
        children=tuple(filter(None, map(_first_id, row.children or []))),
    )


def _first_id(value: Any) -> str | None:
    """Celery stores a child as ``[[id, parent], None]``: the first string is its id."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return next(filter(None, map(_first_id, value)), None)
    return None


def celery_meta(task_id: str) -> dict[str, Any] | None:
    """The task as Celery's result backend protocol describes it, or ``None``."""
    row = _row(task_id)
    if row is None:
        return None
    return {
        "task_id": row.task_id,
        "status": row.state,
        "result": row.result,
        "traceback": row.traceback or None,
        "children": row.children or [],
        "date_done": row.finished_at,
        "name": row.name or None,
        "args": row.args,
        "kwargs": row.kwargs,
        "worker": row.worker or None,
        "retries": row.attempt - 1,
        "queue": row.queue or None,
        "parent_id": row.parent_id or None,
        "group_id": row.group_id or None,
    }


def history(task_id: str) -> list[Transition]:
    from ..models import Transition as TransitionRow

    _settle(task_id)
    # Operators' audit entries share the table; see tasktrail.store.audit.
    rows = TransitionRow.objects.using(_alias()).filter(task_id=task_id, action="").order_by("id")
    return [Transition(r.state, r.attempt, r.at, r.worker, r.detail or {}) for r in rows]


def recent(limit: int = 50, **filters: Any) -> list[TaskRecord]:
    """The most recently updated tasks, newest first, filtered by model fields."""
    _buffer().sync()
    rows = _tasks().filter(**filters).order_by("-updated_at")[:limit]
    return [_record(r) for r in rows]


def forget(task_id: str) -> None:
    from ..models import Transition

    _settle(task_id)
    with transaction.atomic(using=_alias()):
        Transition.objects.using(_alias()).filter(task_id=task_id).delete()
        _tasks().filter(task_id=task_id).delete()


def save_group(group_id: str, result: Any, now: datetime, expires_at: datetime | None) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(_alias()).update_or_create(
        group_id=group_id,
        defaults={"result": result, "created_at": now, "expires_at": expires_at},
    )


def restore_group(group_id: str) -> Any:
    from ..models import GroupResult

    row = GroupResult.objects.using(_alias()).filter(group_id=group_id).first()
    return None if row is None else row.result


def delete_group(group_id: str) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(_alias()).filter(group_id=group_id).delete()
