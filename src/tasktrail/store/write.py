"""The write path: events into this process's buffer, and each flush into the tables.

Every event reaches the database through :func:`record` and one flush thread per
process (:class:`~tasktrail.store.buffer.WriteBuffer`). A flush writes all buffered
tasks in one guarded upsert plus their history (:mod:`tasktrail.store.history`): one
statement on PostgreSQL, a short transaction on SQLite.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import conf, ids
from . import history as _history
from . import names, rollup, spool, sql, storable, timeouts
from .buffer import WriteBuffer
from .db import alias, tasks
from .history import HistoryEntry
from .schema import COLUMNS, DATETIMES, Row

logger = logging.getLogger("tasktrail.store")

# SQLite allows 32766 parameters per statement; 500 rows stay well below.
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write(rows: list[Row], entries: list[HistoryEntry]) -> None:
    """Write one flush; a database that refuses some rows gets the others (see
    :mod:`tasktrail.store.storable`), a database that cannot be reached raises."""
    connection = connections[alias()]
    # Only tasktrail's own threads write (flush, upkeep's replay): bound their waits.
    timeouts.bound(connection)
    try:
        storable.isolate(lambda r, e: _write_once(connection, r, e), rows, entries)
    except Exception:
        # A broken connection must not be reused by the next attempt.
        connection.close()
        raise
    try:
        names.remember(rows)
    except Exception:
        # The rows are written; a name missing from the search's table is retried by
        # the next flush that carries it, not worth failing this one for.
        logger.warning("tasktrail: could not record task names", exc_info=True)


def _write_once(
    connection: BaseDatabaseWrapper, rows: list[Row], entries: list[HistoryEntry]
) -> None:
    # First pass, from this flush's own rows: an outcome decided away from the task
    # (attempt 0, e.g. a revoke) takes the attempt of a row flushed with it, so that the
    # in-flush rule "each (state, attempt) once" compares resolved attempts. What is
    # still 0 afterwards is resolved against the stored row: in SQL on PostgreSQL (the
    # one statement), and on the generic path by a second pass over RETURNING. Both
    # passes are needed; neither repeats the other's work.
    attempts = {row["task_id"]: row["attempt"] for row in rows}
    entries = _history.resolve_attempts(entries, attempts)
    if connection.vendor == "postgresql":
        _write_postgresql(connection, rows, entries)
    else:
        _write_generic(connection, rows, entries)


def _write_generic(
    connection: BaseDatabaseWrapper, rows: list[Row], entries: list[HistoryEntry]
) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    stored: dict[str, int] = {}
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for chunk in chunks(rows):
            params = [adapt(row[c]) if c in DATETIMES else row[c] for row in chunk for c in COLUMNS]
            cursor.execute(sql.upsert(len(chunk)), params)
            stored.update((found[0], found[2]) for found in cursor.fetchall())
        entries = _history.resolve_attempts(entries, stored, final=True)
        listed: set[tuple[str, str, int]] = set()
        for chunk in chunks(sorted({e.task_id for e in entries})):
            cursor.execute(sql.listed_history(len(chunk)), list(chunk))
            listed.update(cursor.fetchall())
        fresh = _history.new_entries(entries, listed)
        for part in chunks(fresh):
            values = [_history.values(e) for e in part]
            params = [adapt(v) if isinstance(v, datetime) else v for e in values for v in e]
            cursor.execute(sql.insert_history(len(part)), params)
        _count(cursor, [(e.task_id, e.state, e.attempt) for e in fresh])


def _count(cursor: Any, listed: list[tuple[str, str, int]]) -> None:
    """Add the flush's outcomes and retries to the metrics' counters (:mod:`.rollup`), in
    its transaction; the rows are read back only for the few entries that count."""
    counted = [entry for entry in listed if entry[1] in rollup.COUNTED_STATES]
    if not counted:
        return
    rows: dict[str, rollup.Stored] = {}
    for chunk in chunks(sorted({task_id for task_id, _, _ in counted})):
        found = tasks().filter(task_id__in=chunk)
        for task_id, *values in found.values_list("task_id", *rollup.STORED):
            rows[task_id] = rollup.Stored(*values)
    added = sorted(rollup.fold(counted, rows).items())
    for part in chunks(added):
        cursor.execute(rollup.upsert_sql(len(part)), [v for key, n in part for v in (*key, *n)])


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dumps(items: Any) -> str:
    return json.dumps(items, default=_json_default, separators=(",", ":"))


def _write_postgresql(
    connection: BaseDatabaseWrapper, rows: list[Row], entries: list[HistoryEntry]
) -> None:
    import psycopg

    encoded = [dict(zip(_history.COLUMNS, _history.values(e), strict=True)) for e in entries]
    params = (_dumps(rows), _dumps(encoded))
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


@functools.cache
def _column_types(alias: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ..models import Task, Transition

    connection = connections[alias]

    def types(model: Any, columns: Sequence[str]) -> tuple[str, ...]:
        fields = {f.column: f for f in model._meta.concrete_fields}
        return tuple(str(fields[c].db_type(connection)) for c in columns)

    return types(Task, COLUMNS), types(Transition, _history.COLUMNS)


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


def write_and_tell(rows: list[Row], entries: list[HistoryEntry]) -> None:
    write(rows, entries)
    for listener in _listeners:
        try:
            listener(rows)
        except Exception:
            logger.exception("tasktrail: write listener %r failed", listener)


@functools.cache
def buffer() -> WriteBuffer:
    """This process's buffer, made on the first event (a web process that only reads
    never has one, nor its thread and exit hook)."""
    settings = conf.get()
    return WriteBuffer(
        write_and_tell,
        settings.flush_seconds,
        settings.MAX_BUFFERED,
        # What the bounded final flush cannot write goes to disk, for a worker to write.
        spill=spool.write,
        close_timeout=settings.FINAL_FLUSH_TIMEOUT.total_seconds(),
    )


def _existing() -> WriteBuffer | None:
    return buffer() if buffer.cache_info().currsize else None


def record(row: Row, detail: dict[str, Any] | None = None) -> None:
    """Queue an event for writing, made storable first; never blocks on the database."""
    try:
        storable.row(row)
    except storable.Unstorable:
        # In the buffer it would fail every flush (and every other task's record with it).
        task_id = str(row["task_id"])
        logger.warning(
            "tasktrail: not recording task id %r: %s", task_id[:80], ids.problem(task_id)
        )
        return
    buffer().add(row, None if detail is None else storable.detail(detail))


def flush() -> None:
    """Write this process's buffered events now, from the calling thread."""
    if (found := _existing()) is not None:
        found.flush()


def close() -> None:
    """Flush what is left before this process stops, within ``FINAL_FLUSH_TIMEOUT``;
    spools what it cannot write; logs instead of raising."""
    if (found := _existing()) is not None:
        found.close()


def sync(timeout: float = 5.0) -> bool:
    """Wait until this process's buffered events are written."""
    found = _existing()
    return True if found is None else found.sync(timeout)


def settle(task_id: str) -> None:
    """Let this process's buffered writes for ``task_id`` land before reading or deleting."""
    found = _existing()
    if found is not None and found.pending(task_id):
        found.sync()


def forget(task_id: str) -> None:
    """Delete ``task_id``'s record and history."""
    from ..models import Transition

    if not ids.valid(task_id):
        return
    settle(task_id)
    with transaction.atomic(using=alias()):
        Transition.objects.using(alias()).filter(task_id=task_id).delete()
        tasks().filter(task_id=task_id).delete()
