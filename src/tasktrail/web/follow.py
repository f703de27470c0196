"""What a live stream follows, whichever transport carries it (Server-Sent Events in
:mod:`.sse` and :mod:`.groups`, WebSockets in :mod:`tasktrail.channels`).

Each follow yields every new version of a task (or a canvas) once, from the process's
one hub (:mod:`tasktrail.notify.hub`), ends once it is done, and yields ``None`` each
``KEEPALIVE_INTERVAL`` without a change (the event stream sends a keep-alive comment
then; a WebSocket's server pings on its own). ``seen`` is the version the client
already has (``Last-Event-ID``): it is not sent again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import access, canvas, conf, notify, store
from ..records import ChainStatus, GroupStatus, TaskRecord
from .streams import in_thread

Status = GroupStatus | ChainStatus
#: How a canvas is found for a viewer (``canvas.visible_group``, ``visible_chain``):
#: its status and the level it is seen at, or :class:`~tasktrail.exceptions.TaskNotFound`.
Lookup = Callable[[str, Any], tuple[Status, access.Level]]


def version(status: Status) -> int:
    """A canvas's version: its latest task's, the stream's event id (0 for none)."""
    return max((notify.version(r) for r in canvas.records(status)), default=0)


def watched(status: Status) -> list[str]:
    """The tasks whose changes change ``status``: its members, a chord's callback, a
    chain's steps (each once)."""
    ids = [r.id for r in canvas.records(status)]
    if isinstance(status, GroupStatus) and status.callback_id:
        ids.append(status.callback_id)
    if isinstance(status, ChainStatus):
        ids += [s.task_id for s in status.steps]
    return list(dict.fromkeys(ids))


async def task(task_id: str, seen: str | None) -> AsyncIterator[TaskRecord | None]:
    """Each version of the task newer than ``seen`` (the latest, when several landed
    while the client was sent the last), until one is done."""
    keepalive = conf.get().KEEPALIVE_INTERVAL.total_seconds()
    hub = notify.hub()
    async with hub.watch(task_id) as mailbox:
        # Read again now that changes are watched: one may have landed since the lookup.
        current: TaskRecord | None = (await hub.read(store.get_many, [task_id])).get(task_id)
        while True:
            if current is not None and str(notify.version(current)) != seen:
                seen = str(notify.version(current))
                yield current
                if current.ready:
                    return
            # Not held while the stream waits: idle streams are most of them.
            current = None
            current = await mailbox.get(keepalive)
            if current is None:
                yield None


async def canvas_status(
    lookup: Lookup, canvas_id: str, user: Any, status: Status, seen: str | None
) -> AsyncIterator[tuple[Status, access.Level] | None]:
    """Each new version of the canvas ``status`` was first read as, until it is done.

    Read again (and the access rule asked again) on each change of one of its tasks and
    every ``KEEPALIVE_INTERVAL``, which catches members recorded after it was first
    read. Raises :class:`~tasktrail.exceptions.TaskNotFound` if it is forgotten (or
    hidden) meanwhile.
    """
    keepalive = conf.get().KEEPALIVE_INTERVAL.total_seconds()
    async with notify.hub().watch(*watched(status)) as mailbox:
        while True:
            # Also right after watching: a change may have landed since the first read.
            status, level = await in_thread(lookup, canvas_id, user)
            if str(version(status)) != seen:
                seen = str(version(status))
                yield status, level
            if status.ready:
                return
            if await mailbox.get(keepalive) is None:
                yield None
