"""Groups, chords and chains as one unit: what each member did, and what it adds up to.

A *group* is the tasks Celery sent with one group id (``group(...).apply_async().id``);
a *chord* is a group whose header has a callback: tasktrail's native join
(:mod:`tasktrail.celery.backend`) keeps the callback's id with the join, so the group
shows it and its result. A *chain* is found by any of its steps' ids: its steps are
learned when its first step is published (:mod:`tasktrail.celery.canvas`), so steps
Celery has not sent yet show as not sent, in their place.

Values here are frozen and unredacted; the web surfaces show them through
:mod:`tasktrail.access` (:func:`visible_group`, :func:`visible_chain`).
"""

from __future__ import annotations

from typing import Any, Final

from . import access, store
from .exceptions import TaskNotFound
from .records import CHORD, GROUP, ChainStatus, GroupStatus, Step, TaskRecord
from .store import groups

#: Most members a group's status lists (its counts cover every member): a page and an
#: event of 200 rows stay small (a member's snapshot is about 0.5 kB of JSON).
MEMBERS_SHOWN: Final = 200


def _saved_order(group_id: str) -> list[str]:
    """The member ids of a saved group, in order (Celery's ``as_tuple()`` form)."""
    saved = store.restore_group(group_id)
    try:
        (_, _parent), children = saved
        return [str(child[0][0]) for child in children]
    except (TypeError, ValueError, IndexError):
        return []


def _group(group_id: str) -> GroupStatus | None:
    join = groups.join(group_id)
    callback_id = join.callback_id if join is not None else ""
    counts = groups.counts(group_id, without=callback_id)
    order = _saved_order(group_id)
    if not counts and not order and join is None:
        return None
    found = groups.members(group_id, MEMBERS_SHOWN, without=callback_id)
    place = {task_id: i for i, task_id in enumerate(order)}
    found.sort(key=lambda r: (place.get(r.id, len(place)), r.sent_at or r.updated_at, r.id))
    recorded = sum(counts.values())
    total = max(recorded, len(order), (join.total or 0) if join is not None else 0)
    callback = store.get_many([callback_id]).get(callback_id) if callback_id else None
    return GroupStatus(
        id=group_id,
        kind=CHORD if join is not None else GROUP,
        members=tuple(found),
        total=total,
        counts=dict(counts),
        callback_id=callback_id,
        callback=callback,
    )


def group(group_id: str) -> GroupStatus:
    """The group (or chord) ``group_id`` as one unit; raises :class:`tasktrail.TaskNotFound`
    if no task of it was recorded. A chord's group id is its header's
    (``chord_result.parent.id``, or the ``group_id`` of any member or of its callback)."""
    found = _group(str(group_id))
    if found is None:
        raise TaskNotFound(str(group_id)[:300])
    return found


def chain(task_id: str) -> ChainStatus:
    """The chain any step ``task_id`` belongs to (e.g. the id ``chain(...).apply_async()``
    returns, its last step's); raises :class:`tasktrail.TaskNotFound` if unknown."""
    found = groups.chain(str(task_id))
    if found is None:
        raise TaskNotFound(str(task_id)[:300])
    chain_id, steps = found
    records = store.get_many([s.task_id for s in steps])
    return ChainStatus(
        chain_id,
        tuple(
            Step(
                s.position,
                s.task_id,
                s.name,
                records.get(s.task_id),
                _group(s.task_id) if s.name in (GROUP, CHORD) else None,
            )
            for s in steps
        ),
    )


def _records(status: GroupStatus | ChainStatus) -> list[TaskRecord]:
    if isinstance(status, GroupStatus):
        return [*status.members, *([status.callback] if status.callback else [])]
    found: list[TaskRecord] = []
    for step in status.steps:
        found += [step.record] if step.record else []
        found += _records(step.group) if step.group else []
    return found


def records(status: GroupStatus | ChainStatus) -> list[TaskRecord]:
    """Every record ``status`` holds: members, callback, steps (and their groups')."""
    return _records(status)


def visible_group(group_id: str, user: Any) -> tuple[GroupStatus, access.Level]:
    """The group and what ``user`` may see of it (:func:`tasktrail.access.canvas_level`);
    :class:`tasktrail.TaskNotFound` if unknown *or* hidden, alike."""
    viewer = access.viewer(user)
    found = _group(str(group_id))
    owners = groups.owners(str(group_id)) if found is not None else set()
    level = access.canvas_level(viewer, owners)
    if found is None or level is access.Level.NONE:
        raise TaskNotFound(str(group_id)[:300])
    return found, level


def visible_chain(task_id: str, user: Any) -> tuple[ChainStatus, access.Level]:
    """The chain and what ``user`` may see of it, as :func:`visible_group`."""
    viewer = access.viewer(user)
    try:
        found: ChainStatus | None = chain(task_id)
    except TaskNotFound:
        found = None
    owners = groups.owners_of([r.id for r in _records(found)]) if found is not None else set()
    level = access.canvas_level(viewer, owners)
    if found is None or level is access.Level.NONE:
        raise TaskNotFound(str(task_id)[:300])
    return found, level
