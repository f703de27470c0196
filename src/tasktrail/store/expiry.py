"""Expiry: finished tasks past their ``expires_at`` are deleted in small batches.

Why batches: one DELETE of millions of rows holds its locks and its WAL until it
commits, and has run databases out of memory. A batch of ``CLEANUP_BATCH`` tasks
(and their history) is one short transaction, so writers barely notice. Unfinished
tasks have no ``expires_at`` and are never deleted.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.models import Exists, OuterRef, QuerySet

from .db import alias as _alias
from .db import tasks as _tasks
from .sql import HISTORY_TABLE, TASK_TABLE

if TYPE_CHECKING:
    from ..models import ChainStep, Chord, ChordMember, GroupResult, Revocation, Worker

#: How long the row of a worker that stopped (or went silent) stays listed.
WORKERS_KEPT = timedelta(days=1)
#: Pause after each batch, relative to the batch's own time: the cleanup uses the
#: database two thirds of the time, and writers' commits do not queue behind its WAL.
REST = 0.5
#: Most tasks one batch may delete: its DELETE names each id as a parameter, and
#: SQLite takes at most 32,766 in one statement (PostgreSQL passes one array).
MAX_BATCH = 32_000


@dataclasses.dataclass(frozen=True, slots=True)
class Expired:
    """What a cleanup deleted, or would delete."""

    tasks: int = 0
    #: Saved groups, with chords' joins and chains' steps.
    groups: int = 0
    workers: int = 0
    revocations: int = 0


def _among(vendor: str, ids: list[str]) -> tuple[str, list[Any]]:
    """``task_id`` is one of ``ids``: one array parameter on PostgreSQL (a short plan)."""
    if vendor == "postgresql":
        return "= ANY(%s)", [ids]
    return f"IN ({', '.join(['%s'] * len(ids))})", list(ids)


def delete_batch(now: datetime, batch: int, after: Any = None) -> tuple[int, int, Any]:
    """Delete up to ``batch`` tasks expired at ``now``, with their history.

    ``after`` is where the previous batch stopped (the last ``expires_at`` it read, as
    the database returned it): the scan starts there, not at the entries earlier
    batches left dead in the index, which would make each batch slower than the last.
    The ids are read first so each DELETE is a primary-key lookup whatever the planner
    thinks of the table; ``expires_at`` is checked again in case a ``LOST`` task got its
    real outcome meanwhile. Returns how many were found, how many deleted, and where
    the next batch starts.
    """
    connection = connections[_alias()]
    at = connection.ops.adapt_datetimefield_value(now)
    since, params = ("", [at]) if after is None else (" AND expires_at >= %s", [at, after])
    with transaction.atomic(using=_alias()), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT task_id, expires_at FROM {TASK_TABLE} WHERE expires_at < %s{since} "
            "ORDER BY expires_at LIMIT %s",
            [*params, batch],
        )
        found = cursor.fetchall()
        if not found:
            return 0, 0, after
        among, ids = _among(connection.vendor, [task_id for task_id, _ in found])
        cursor.execute(
            f"DELETE FROM {TASK_TABLE} WHERE task_id {among} AND expires_at < %s RETURNING task_id",
            [*ids, at],
        )
        gone = [row[0] for row in cursor.fetchall()]
        if gone:
            among, ids = _among(connection.vendor, gone)
            cursor.execute(f"DELETE FROM {HISTORY_TABLE} WHERE task_id {among}", ids)
    return len(found), len(gone), found[-1][1]


def delete_tasks(
    now: datetime, batch: int, deadline: float | None = None, rest: float = REST
) -> tuple[int, bool]:
    """Delete expired tasks batch by batch until none is left or ``deadline`` passes.

    After each batch, pause ``rest`` times as long as the batch took, so the database
    keeps room for the writers. ``deadline`` is a :func:`time.monotonic` value.
    Returns the number deleted and whether every expired task is gone.
    """
    deleted, after = 0, None
    while deadline is None or time.monotonic() < deadline:
        started = time.monotonic()
        found, gone, after = delete_batch(now, batch, after)
        deleted += gone
        if found < batch:
            return deleted, True
        time.sleep(rest * (time.monotonic() - started))
    return deleted, False


def delete_rest(now: datetime) -> Expired:
    """Delete expired groups, long-gone workers and revocations of deleted tasks."""
    groups, workers, revocations = _rest(now)
    # Chords' joins and chains' steps expire as the saved groups do, counted with them;
    # a join's counted header tasks go with it (first: they are found by its row), as
    # part of it, not counted apart.
    with transaction.atomic(using=_alias()):
        _members(now).delete()
        canvas = sum(rows.delete()[0] for rows in _canvas(now))
    return Expired(
        groups=groups.delete()[0] + canvas,
        workers=workers.delete()[0],
        revocations=revocations.delete()[0],
    )


def delete_expired(now: datetime, batch: int) -> Expired:
    """Delete everything expired at ``now``."""
    tasks, _ = delete_tasks(now, batch)
    return dataclasses.replace(delete_rest(now), tasks=tasks)


def count(now: datetime) -> Expired:
    """What a cleanup at ``now`` would delete; for a dry run."""
    groups, workers, revocations = _rest(now)
    return Expired(
        tasks=_tasks().filter(expires_at__lt=now).count(),
        groups=groups.count() + sum(rows.count() for rows in _canvas(now)),
        workers=workers.count(),
        revocations=revocations.count(),
    )


def _canvas(now: datetime) -> tuple[QuerySet[Chord], QuerySet[ChainStep]]:
    from ..models import ChainStep, Chord

    alias = _alias()
    return (
        Chord.objects.using(alias).filter(expires_at__lt=now),
        ChainStep.objects.using(alias).filter(expires_at__lt=now),
    )


def _members(now: datetime) -> QuerySet[ChordMember]:
    """The counted header tasks of the chords :func:`_canvas` deletes."""
    from ..models import ChordMember

    expired, _ = _canvas(now)
    return ChordMember.objects.using(_alias()).filter(group_id__in=expired.values("group_id"))


def _rest(
    now: datetime,
) -> tuple[QuerySet[GroupResult], QuerySet[Worker], QuerySet[Revocation]]:
    from ..models import GroupResult, Revocation, Task, Worker

    alias = _alias()
    task = Task.objects.using(alias).filter(task_id=OuterRef("task_id"))
    return (
        GroupResult.objects.using(alias).filter(expires_at__lt=now),
        # A stopped or silent worker's tasks were settled long before.
        Worker.objects.using(alias).filter(silent_after__lt=now - WORKERS_KEPT),
        # A revocation matters while its task's message may still be in a queue, and
        # such a task keeps its REVOKED record.
        Revocation.objects.using(alias).filter(~Exists(task)),
    )
