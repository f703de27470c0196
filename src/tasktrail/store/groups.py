"""Canvas tables: saved groups (``GroupResult.save()``), chords' joins, chains' steps;
and the reads that show a group, a chord or a chain as one unit.

A chord's join is one row of ``tasktrail_chord`` updated in place with
``... SET done = done + 1 RETURNING``: atomic on SQLite (≥ 3.35) and PostgreSQL alike,
so exactly one header task sees the count reach the total, whatever the concurrency.
Each header task counts once: the row ``(group id, task id)`` it inserts into
``tasktrail_chord_member`` decides, in the same transaction, whether it adds one. A
header task run again (redelivered after its worker was lost with ``acks_late``, a
visibility-timeout redelivery, a replayed message) inserts nothing and adds nothing, so
the callback cannot go before every header task returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Count

from .. import ids
from ..records import TaskRecord
from .db import alias, tasks
from .queries import group as recorded_members
from .write import sync

CHORD_TABLE = "tasktrail_chord"
#: The header tasks each join has counted (:class:`~tasktrail.models.ChordMember`).
MEMBER_TABLE = "tasktrail_chord_member"


def save(group_id: str, result: Any, now: datetime, expires_at: datetime | None) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(alias()).update_or_create(
        group_id=group_id,
        defaults={"result": result, "created_at": now, "expires_at": expires_at},
    )


def restore(group_id: str) -> Any:
    from ..models import GroupResult

    if not ids.valid(group_id):
        return None
    row = GroupResult.objects.using(alias()).filter(group_id=group_id).first()
    return None if row is None else row.result


def delete(group_id: str) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(alias()).filter(group_id=group_id).delete()


# -- chords ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Join:
    """A chord's join as its row holds it."""

    group_id: str
    callback_id: str
    #: Header tasks Celery counted; ``None`` until it has said (``set_chord_size``).
    size: int | None
    added: int
    done: int
    failed: bool = False

    @property
    def total(self) -> int | None:
        return None if self.size is None else self.size + self.added


def _upsert(group_id: str, now: datetime, update: str, extra: dict[str, Any]) -> Any:
    columns = ["group_id", "created_at", *extra]
    values = [group_id, now, *extra.values()]
    sql = (
        f"INSERT INTO {CHORD_TABLE} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(values))}) "
        f"ON CONFLICT (group_id) DO UPDATE SET {update} "
        "RETURNING done, size, added, failed_at"
    )
    with connections[alias()].cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()


def chord_applied(
    group_id: str, callback_id: str, now: datetime, expires_at: datetime | None
) -> None:
    """A chord was applied: its join starts at 0 (applying a frozen chord again reuses
    its group id for a new run, and its header tasks' ids: they count again). No header
    task is sent yet at this point."""
    with transaction.atomic(using=alias()):
        with connections[alias()].cursor() as cursor:
            cursor.execute(f"DELETE FROM {MEMBER_TABLE} WHERE group_id = %s", [group_id])
        _upsert(
            group_id,
            now,
            "callback_id = excluded.callback_id, size = NULL, added = 0, done = 0, "
            "failed_at = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at",
            {"callback_id": callback_id, "expires_at": expires_at, "done": 0, "added": 0},
        )


def chord_size(group_id: str, size: int, now: datetime) -> None:
    """Celery counted the header (just before it sends the header's last task)."""
    _upsert(group_id, now, "size = excluded.size", {"size": size, "done": 0, "added": 0})


def chord_added(group_id: str, now: datetime) -> None:
    """A header task added one more task to the header (``Task.add_to_chord``)."""
    _upsert(group_id, now, f"added = {CHORD_TABLE}.added + 1", {"added": 1, "done": 0})


def chord_part(group_id: str, task_id: str, now: datetime) -> tuple[int, int | None]:
    """Header task ``task_id`` returned: the count now, and the total; the total is
    ``None`` when there is nothing for this task to send: the size is not known yet, a
    header task failed the chord, or this task was counted before (it ran again).

    The member's insert and the count's addition are one transaction: on PostgreSQL a
    second delivery of the same task waits on the first one's uncommitted member row,
    then inserts nothing; on SQLite the transaction holds the write lock from its first
    statement, the insert, to its commit.
    """
    with transaction.atomic(using=alias()):
        with connections[alias()].cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {MEMBER_TABLE} (group_id, task_id) VALUES (%s, %s) "
                "ON CONFLICT (group_id, task_id) DO NOTHING RETURNING task_id",
                [group_id, task_id],
            )
            counted = cursor.fetchone() is not None
        step = 1 if counted else 0
        done, size, added, failed_at = _upsert(
            group_id, now, f"done = {CHORD_TABLE}.done + {step}", {"done": step, "added": 0}
        )
    if size is None or failed_at is not None or not counted:
        return int(done), None
    return int(done), int(size) + int(added)


def chord_failed(group_id: str, now: datetime) -> bool:
    """A header task failed: whether it is the first to (it then fails the chord)."""
    sql = f"UPDATE {CHORD_TABLE} SET failed_at = %s WHERE group_id = %s AND failed_at IS NULL"
    with connections[alias()].cursor() as cursor:
        cursor.execute(sql, [now, group_id])
        return bool(cursor.rowcount == 1)


def join(group_id: str) -> Join | None:
    """The chord whose header is ``group_id``, or ``None`` (a plain group, or unknown)."""
    from ..models import Chord

    if not ids.valid(group_id):
        return None
    row = Chord.objects.using(alias()).filter(group_id=group_id).first()
    if row is None:
        return None
    return Join(
        row.group_id, row.callback_id, row.size, row.added, row.done, row.failed_at is not None
    )


# -- groups as one unit ---------------------------------------------------------------


def members(group_id: str, limit: int, without: str = "") -> list[TaskRecord]:
    """Up to ``limit`` recorded tasks of the group (not its chord's callback ``without``,
    which Celery sends with the header's group id)."""
    found = recorded_members(group_id, limit + (1 if without else 0))
    return [r for r in found if r.id != without][:limit]


def counts(group_id: str, without: str = "") -> dict[str, int]:
    """The group's recorded tasks by state, however many (one aggregate on the partial
    index ``tasktrail_task_grouped``)."""
    if not ids.valid(group_id):
        return {}
    # The sender's own buffered PENDING rows belong in the count: without them a group
    # whose first 9 members finished before the 10th's sending landed read "9 of 9
    # done" (CI, 2026-12-02).
    sync()
    rows = tasks().filter(group_id=group_id).exclude(group_id="")
    if without:
        rows = rows.exclude(task_id=without)
    found = rows.values_list("state").annotate(n=Count("task_id")).order_by()
    return {state: n for state, n in found}


def _owners(rows: Any) -> set[Any]:
    # A record nobody sent has no owner to tell: a chord's callback that Celery failed
    # before sending it (a header task failed) is written by the backend alone.
    found = set(rows.exclude(sent_at=None, owner=None).values_list("owner", flat=True).distinct())
    return found if found or not rows.exists() else {None}


def owners(group_id: str) -> set[Any]:
    """The owners of the group's tasks (its chord's callback included); a group none
    of whose tasks was sent by someone is ``{None}``, an unknown one empty."""
    if not ids.valid(group_id):
        return set()
    return _owners(tasks().filter(group_id=group_id).exclude(group_id=""))


def owners_of(task_ids: Sequence[str]) -> set[Any]:
    """The owners of those of ``task_ids`` recorded (a chain's steps), as :func:`owners`."""
    wanted = [task_id for task_id in task_ids if ids.valid(task_id)]
    return _owners(tasks().filter(task_id__in=wanted)) if wanted else set()


# -- chains ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    task_id: str
    position: int
    name: str


def save_chain(
    chain_id: str, steps: Sequence[tuple[str, str]], now: datetime, expires_at: datetime | None
) -> None:
    """A chain's steps, first to last, as ``(task id, name)``; a chain seen before keeps
    what it had (its first step's publish is the one that counts)."""
    from ..models import ChainStep

    rows = [
        ChainStep(
            task_id=task_id,
            chain_id=chain_id,
            position=i,
            name=name[:255],
            created_at=now,
            expires_at=expires_at,
        )
        for i, (task_id, name) in enumerate(steps)
        if ids.valid(task_id)
    ]
    ChainStep.objects.using(alias()).bulk_create(rows, ignore_conflicts=True)


def chain_id(task_id: str) -> str | None:
    """The id of the chain ``task_id`` is a step of, or ``None``: one primary-key read."""
    from ..models import ChainStep

    if not ids.valid(task_id):
        return None
    found = ChainStep.objects.using(alias()).filter(task_id=task_id)
    return found.values_list("chain_id", flat=True).first()


def chain(task_id: str) -> tuple[str, list[Step]] | None:
    """The chain ``task_id`` is a step of: its id and its steps in order; or ``None``."""
    from ..models import ChainStep

    found_id = chain_id(task_id)
    if found_id is None:
        return None
    found = ChainStep.objects.using(alias()).filter(chain_id=found_id).order_by("position")
    return found_id, [Step(s.task_id, s.position, s.name) for s in found]
