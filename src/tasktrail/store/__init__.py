"""The store: the only code that touches tasktrail's tables.

Writes go through a per-process :class:`~tasktrail.store.buffer.WriteBuffer` and
land as one guarded upsert per flush; reads return frozen records.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction

from .. import conf, jsoncodec
from ..exceptions import TaskNotFound
from ..records import Progress, TaskError, TaskRecord, Transition
from . import sql
from .buffer import HistoryEntry, WriteBuffer
from .schema import COLUMNS, DATETIMES, Row, event

__all__ = [
    "TaskNotFound",
    "close",
    "delete_expired",
    "event",
    "flush",
    "forget",
    "get",
    "history",
    "record",
    "sync",
]

# SQLite allows 32766 parameters per statement; 500 rows stay well below.
_CHUNK = 500


def _alias() -> str:
    return conf.get().DATABASE


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write(rows: list[Row], history: list[HistoryEntry]) -> None:
    connection = connections[_alias()]
    adapt = connection.ops.adapt_datetimefield_value
    stored: dict[str, tuple[str, int]] = {}
    try:
        with transaction.atomic(using=_alias()), connection.cursor() as cursor:
            for chunk in _chunks(rows, _CHUNK):
                params = [
                    adapt(row[c]) if c in DATETIMES else row[c] for row in chunk for c in COLUMNS
                ]
                cursor.execute(sql.upsert(len(chunk)), params)
                stored.update((tid, (state, attempt)) for tid, state, attempt in cursor.fetchall())
            final = {row["task_id"]: (row["state"], row["attempt"]) for row in rows}
            kept = [h for h in history if stored.get(h[0]) == final[h[0]]]
            for part in _chunks(kept, _CHUNK):
                cursor.execute(
                    sql.insert_history(len(part)),
                    [
                        v
                        for tid, state, attempt, at, worker, detail in part
                        for v in (
                            tid,
                            state,
                            attempt,
                            adapt(at),
                            worker,
                            None if detail is None else jsoncodec.dumps(detail),
                        )
                    ],
                )
    except Exception:
        # A broken connection must not be reused by the next attempt.
        connection.close()
        raise


@functools.cache
def _buffer() -> WriteBuffer:
    settings = conf.get()
    return WriteBuffer(_write, settings.flush_seconds, settings.MAX_BUFFERED)


def record(row: Row, detail: dict[str, Any] | None = None) -> None:
    """Queue an event for writing; never blocks on the database."""
    _buffer().add(row, detail)


def flush() -> None:
    """Write this process's buffered events now, from the calling thread."""
    _buffer().flush()


def close() -> None:
    """Flush what is left before this process stops; logs instead of raising."""
    _buffer().close()


def sync(timeout: float = 5.0) -> bool:
    """Wait until this process's buffered events are written."""
    return _buffer().sync(timeout)


def _settle(task_id: str) -> None:
    """Let this process's buffered writes for ``task_id`` land before reading or deleting."""
    if _buffer().pending(task_id):
        _buffer().sync()


def _row(task_id: str) -> Any:
    from ..models import Task

    _settle(task_id)
    return Task.objects.using(_alias()).filter(task_id=task_id).first()


def get(task_id: str) -> TaskRecord:
    if not isinstance(task_id, str) or not task_id or len(task_id) > 255:
        raise TaskNotFound(str(task_id)[:300])
    row = _row(task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return _record(row)


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
    )


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
    rows = TransitionRow.objects.using(_alias()).filter(task_id=task_id).order_by("id")
    return [Transition(r.state, r.attempt, r.at, r.worker, r.detail or {}) for r in rows]


def recent(limit: int = 50, **filters: Any) -> list[TaskRecord]:
    """The most recently updated tasks, newest first, filtered by model fields."""
    from ..models import Task

    _buffer().sync()
    rows = Task.objects.using(_alias()).filter(**filters).order_by("-updated_at")[:limit]
    return [_record(r) for r in rows]


def forget(task_id: str) -> None:
    from ..models import Task, Transition

    _settle(task_id)
    with transaction.atomic(using=_alias()):
        Transition.objects.using(_alias()).filter(task_id=task_id).delete()
        Task.objects.using(_alias()).filter(task_id=task_id).delete()


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


def delete_expired(now: datetime, batch: int = 1000) -> int:
    """Delete finished tasks (and saved groups) past their expiry, in small batches."""
    from ..models import GroupResult, Task, Transition

    deleted = 0
    tasks = Task.objects.using(_alias())
    while True:
        ids = list(tasks.filter(expires_at__lt=now).values_list("task_id", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic(using=_alias()):
            Transition.objects.using(_alias()).filter(task_id__in=ids).delete()
            deleted += tasks.filter(task_id__in=ids).delete()[0]
    GroupResult.objects.using(_alias()).filter(expires_at__lt=now).delete()
    return deleted
