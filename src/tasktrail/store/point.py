"""Celery's point read: one task's :class:`~tasktrail.store.rows.CeleryRow` in one narrow
query, for the result backend (``AsyncResult(id).status``, ``.result``, ``.get()``).

Through the ORM this read built a queryset, compiled it, selected all 32 columns and
made a model instance of them on every call: on a loaded 2-core machine 2.7 ms of the
reading process's CPU and 0.57 ms of PostgreSQL's per read (2.3 ms on SQLite), where
this one costs 0.33 ms and 0.12 ms (0.16 ms on SQLite; bench/README.md, "Reads").

So the statement is made once per connection and selects only the columns Celery's
meta is made of, by primary key, through the driver: psycopg on PostgreSQL, with
server-side binding and prepared once per connection (``PREPARE_WRITES``, as the
write path's statement: PostgreSQL parsing and planning it took 0.28 ms of its CPU per
read, prepared 0.11 ms); sqlite3 on SQLite (Django's cursor wrapper cost 0.06 ms more
per read). Each value goes through the converters the ORM applies to its column
(Django's backend converters, then the field's), so the values are those the ORM reads:
JSON decoded with kombu's type markers, SQLite's datetimes made aware.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import conf
from .db import alias
from .rows import CeleryRow

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]
Fetch = Callable[[BaseDatabaseWrapper, str, str], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How one connection reads: the statement, the driver call, and per selected column
    (by index) its expression and converters."""

    sql: str
    fetch: Fetch
    converters: tuple[tuple[int, Any, tuple[Converter, ...]], ...]


# One plan per connection object: Django has one per thread, so the decoders each
# plan holds are never shared between threads.
_plans: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Plan] = weakref.WeakKeyDictionary()


def read(task_id: str) -> CeleryRow | None:
    """``task_id``'s row as Celery's meta needs it, or ``None`` if it is not stored.

    Reads the database as it is: the caller lets this process's own buffered writes
    land first (:func:`tasktrail.store.write.settle`).
    """
    connection = connections[alias()]
    plan = _plans.get(connection) or _plan(connection)
    found = plan.fetch(connection, plan.sql, task_id)
    if found is None:
        return None
    values = list(found)
    for index, expression, converters in plan.converters:
        value = values[index]
        for convert in converters:
            value = convert(value, expression, connection)
        values[index] = value
    return CeleryRow(task_id, *values)


def _plan(connection: BaseDatabaseWrapper) -> _Plan:
    from ..models import Task

    meta = Task._meta
    # task_id is the key the caller gave: not selected.
    fields: list[Any] = [meta.get_field(name) for name in CeleryRow._fields[1:]]
    key: Any = meta.pk
    quote = connection.ops.quote_name
    sqlite = connection.vendor == "sqlite"
    sql = (
        f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(meta.db_table)} "
        f"WHERE {quote(key.column)} = {'?' if sqlite else '%s'}"
    )
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(meta.db_table)
        found = [
            *connection.ops.get_db_converters(expression),
            *(
                [_json_converter(field)]
                if isinstance(field, models.JSONField)
                else expression.get_db_converters(connection)
            ),
        ]
        if found:
            converters.append((index, expression, tuple(found)))
    fetch = _fetch_postgresql if connection.vendor == "postgresql" else _fetch_generic
    plan = _Plan(sql, _fetch_sqlite if sqlite else fetch, tuple(converters))
    _plans[connection] = plan
    return plan


def _json_converter(field: models.JSONField[Any]) -> Converter:
    """``JSONField.from_db_value`` for a column (never a key transform), with one decoder
    made for the plan instead of one per value (``json.loads(value, cls=...)``): 4 JSON
    columns per read made 4 decoders."""
    decode = field.decoder().decode if field.decoder else json.JSONDecoder().decode

    def convert(value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if not isinstance(value, str):  # None, or what a driver gave as bytes
            return field.from_db_value(value, expression, connection)
        try:
            return decode(value)
        except json.JSONDecodeError:
            # What the field does: text that is not JSON is returned as it is.
            return value

    return convert


def _fetch_generic(connection: BaseDatabaseWrapper, sql: str, task_id: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id])
        return cursor.fetchone()


def _fetch_sqlite(connection: BaseDatabaseWrapper, sql: str, task_id: str) -> Any:
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        connection.ensure_connection()
        # sqlite3 caches the compiled statement per connection.
        return connection.connection.execute(sql, (task_id,)).fetchone()


def _fetch_postgresql(connection: BaseDatabaseWrapper, sql: str, task_id: str) -> Any:
    import psycopg

    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        connection.ensure_connection()
        raw = connection.connection
        prepare = conf.get().PREPARE_WRITES
        # Server-side binding, whatever Django's setting, so psycopg can prepare it.
        with psycopg.Cursor(raw) as cursor, _prepared(raw) if prepare else _unprepared():
            cursor.execute(sql, (task_id,), prepare=prepare)
            return cursor.fetchone()


_unprepared = contextlib.nullcontext


@contextlib.contextmanager
def _prepared(raw: Any) -> Iterator[None]:
    """Let psycopg prepare the statement on a connection where Django turned prepared
    statements off (``prepare_threshold=None``, its default): the user's own queries
    keep Django's setting, as the threshold is restored at once."""
    threshold = raw.prepare_threshold
    if threshold is None:
        raw.prepare_threshold = 0
    try:
        yield
    finally:
        raw.prepare_threshold = threshold
