"""One listener per process, fanned out in memory to every stream watching a task.

A stream watches a task through a :class:`Mailbox` that holds only the latest record:
a slow client skips intermediate progress instead of queueing it. The hub reads each
changed record once, in one database thread of its own, whatever the number of
streams watching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connections

from .. import conf, store
from ..records import TaskRecord
from .base import Notifier

logger = logging.getLogger("tasktrail.notify")

_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 5.0


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Mailbox:
    """The latest record of one task for one stream.

    A bare future and a timer handle while it waits, since most streams are idle:
    no ``asyncio.Event`` (and its deque of waiters) nor ``wait_for``'s timeout object
    per stream.
    """

    __slots__ = ("_record", "_waiter")

    def __init__(self) -> None:
        self._record: TaskRecord | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put(self, record: TaskRecord) -> None:
        self._record = record
        if self._waiter is not None:
            _wake(self._waiter)

    async def get(self, timeout: float) -> TaskRecord | None:
        """The latest record put since the last call; ``None`` after ``timeout`` seconds."""
        if self._record is None:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        record, self._record = self._record, None
        return record


class Doorbell:
    """Rung when any task may have changed: a live list's cue to read what is new."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()

    async def wait(self, timeout: float) -> bool:
        """Whether it rang (since the last call) within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._rung.wait(), timeout)
        except TimeoutError:
            return False
        self._rung.clear()
        return True


class Watch:
    """One stream's watch of some tasks, for ``async with``: a small object instead of
    an ``asynccontextmanager``'s generator and frame, held by every idle stream."""

    __slots__ = ("_hub", "_mailbox", "_task_ids")

    def __init__(self, hub: Hub, task_ids: tuple[str, ...]) -> None:
        self._hub = hub
        self._task_ids = task_ids
        self._mailbox = Mailbox()

    async def __aenter__(self) -> Mailbox:
        self._hub._add(self._mailbox, self._task_ids)
        return self._mailbox

    async def __aexit__(self, *_: object) -> None:
        self._hub._remove(self._mailbox, self._task_ids)


@functools.cache
def _executor() -> ThreadPoolExecutor:
    # One thread, so one connection per process, however many streams are open.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tasktrail-live")


def _on_fresh_connection[T](function: Callable[[T], Any], argument: T) -> Any:
    try:
        return function(argument)
    except DatabaseError:
        # The next read reconnects instead of failing on a broken connection.
        connections[conf.get().DATABASE].close()
        raise


class Hub:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._watchers: dict[str, set[Mailbox]] = {}
        #: Live lists: told of every change, whichever task (they read what is new).
        self._doorbells: set[Doorbell] = set()
        self._versions: dict[str, datetime] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._backoff = _FIRST_BACKOFF

    def watch(self, *task_ids: str) -> Watch:
        """``async with hub.watch(*task_ids) as mailbox``: receive the record of each of
        ``task_ids`` in one mailbox each time it changes (a group's stream watches its
        members; the mailbox keeps the latest)."""
        return Watch(self, task_ids)

    def _add(self, mailbox: Mailbox, task_ids: tuple[str, ...]) -> None:
        self._start()
        for task_id in task_ids:
            self._watchers.setdefault(task_id, set()).add(mailbox)

    def _remove(self, mailbox: Mailbox, task_ids: tuple[str, ...]) -> None:
        for task_id in task_ids:
            watchers = self._watchers[task_id]
            watchers.discard(mailbox)
            if not watchers:
                del self._watchers[task_id]
                self._versions.pop(task_id, None)

    @contextlib.asynccontextmanager
    async def watch_all(self) -> AsyncIterator[Doorbell]:
        """A doorbell rung whenever the notifier reports any change. The polling
        notifier reports only watched tasks, so a list also reads on a timeout."""
        self._start()
        doorbell = Doorbell()
        self._doorbells.add(doorbell)
        try:
            yield doorbell
        finally:
            self._doorbells.discard(doorbell)

    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    async def read[T](self, function: Callable[[T], Any], argument: T) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), _on_fresh_connection, function, argument)

    # The notifier's side (see tasktrail.notify.base.Listener).

    def connected(self) -> None:
        self._backoff = _FIRST_BACKOFF
        for doorbell in self._doorbells:
            doorbell.ring()
        self.changed(list(self._watchers))

    def changed(self, task_ids: Iterable[str]) -> None:
        if self._doorbells:
            task_ids = list(task_ids)
            if task_ids:
                for doorbell in self._doorbells:
                    doorbell.ring()
        before = len(self._dirty)
        self._dirty.update(i for i in task_ids if i in self._watchers)
        if len(self._dirty) > before:
            self._wake.set()

    def known(self) -> Mapping[str, datetime | None]:
        return {task_id: self._versions.get(task_id) for task_id in self._watchers}

    # Background tasks, started with the first watcher, stopped with the loop.

    def _start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._listen()), loop.create_task(self._dispatch())]

    async def _listen(self) -> None:
        while True:
            try:
                await self.notifier.listen(self)
            except Exception:
                logger.warning(
                    "tasktrail: %s listener lost; retrying in %.1f s",
                    self.notifier.name,
                    self._backoff,
                    exc_info=True,
                )
            await asyncio.sleep(self._backoff)
            self._backoff = min(_MAX_BACKOFF, self._backoff * 2)

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            task_ids, self._dirty = self._dirty, set()
            try:
                records: dict[str, TaskRecord] = await self.read(store.get_many, task_ids)
            except Exception:
                logger.warning("tasktrail: cannot read changed tasks", exc_info=True)
                self.changed(task_ids)
                await asyncio.sleep(1.0)
                continue
            self._deliver(records.values())

    def _deliver(self, records: Collection[TaskRecord]) -> None:
        for record in records:
            self._versions[record.id] = record.updated_at
            for mailbox in self._watchers.get(record.id, ()):
                mailbox.put(record)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def for_loop(notifier: Notifier) -> Hub:
    """The hub of the running event loop (one per process under an ASGI server)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(notifier)
    return hub
