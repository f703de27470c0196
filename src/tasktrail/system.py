"""The operators' view of the system: workers and queues, from the store and the broker.

What the workers and queues pages and the metrics endpoint show, composed once:

- **Workers** from their heartbeat rows (:mod:`tasktrail.store.workers`): pool size,
  tasks running and reserved, last heartbeat, carried by the heartbeat every
  ``HEARTBEAT_INTERVAL``, so reading them is one small query. Celery's remote control
  (``app.control.inspect().stats()``/``active()``/``reserved()``) would be live to the
  moment but broadcasts over the broker and waits its whole timeout for replies that
  may never come: stats, active and reserved took 3.1 s at Celery's default 1 s
  timeout, the heartbeat rows 8.6 ms (``python -m bench.inspect``, bench/README.md). The tasks each
  worker finished in the last hour come from the task table, capped
  (:func:`tasktrail.store.overview.ran_by_worker`).
- **Queues** from the broker (:mod:`tasktrail.queues`: depth, consumers) and the store
  (the oldest task waiting, wait percentiles over the last hour).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import celery

from . import queues as _broker
from .store import overview, queries, workers

#: Wait percentiles are over tasks that finished in this window.
WINDOW = overview.WINDOWS["hour"]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerLoad:
    status: queries.WorkerStatus
    #: The pool's size; ``None`` from a worker that did not report it.
    pool: int | None
    #: Tasks it finished in the last hour.
    ran: overview.Ran

    @property
    def busy(self) -> float | None:
        """Share of the pool running tasks now (over 1: more in hand than slots)."""
        if not self.pool or not self.status.alive:
            return None
        return self.status.active / self.pool


@dataclasses.dataclass(frozen=True, slots=True)
class Workers:
    workers: list[WorkerLoad]
    #: ``False`` when the hour held more finished tasks than one capped scan reads.
    exact: bool

    @property
    def alive(self) -> int:
        return sum(1 for w in self.workers if w.status.alive)


def fleet(now: datetime) -> Workers:
    statuses = queries.workers(now)
    pools = workers.pools()
    ran, exact = overview.ran_by_worker(now, WINDOW)
    none = overview.Ran(0, 0)
    return Workers(
        [WorkerLoad(s, pools.get(s.hostname), ran.get(s.hostname, none)) for s in statuses],
        exact,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class QueueLoad:
    name: str
    #: The broker's answer for this queue; ``None`` when the broker could not be read.
    depth: _broker.QueueDepth | None
    #: Waiting tasks the store knows (sent, not started), and the oldest one's sending.
    waiting: int
    oldest_sent_at: datetime | None
    #: Queue wait (sent → started) percentiles, in seconds, over the last hour.
    wait: dict[str, float | None]
    finished: int


@dataclasses.dataclass(frozen=True, slots=True)
class Queues:
    queues: list[QueueLoad]
    broker: _broker.BrokerView
    #: ``False`` when more tasks wait than one capped read counts.
    exact: bool


def queue_names(app: celery.Celery, *found: list[str]) -> list[str]:
    """The app's queues and those the store has tasks for (the default queue's tasks
    carry its name; an empty name is a task sent by an older release)."""
    named = set(_broker.configured(app))
    for names in found:
        named.update(n for n in names if n)
    return sorted(named)


def queue_loads(app: celery.Celery, now: datetime) -> Queues:
    waiting, exact = overview.waiting_by_queue()
    timings = {t.name: t for t in overview.timings(now, WINDOW, by="queue")}
    names = queue_names(app, [w.queue for w in waiting], list(timings))
    seen = _broker.read(app, names)
    by_queue = {w.queue: w for w in waiting}
    loads = []
    for name in names:
        held = by_queue.get(name)
        timing = timings.get(name)
        loads.append(
            QueueLoad(
                name=name,
                depth=seen.depth(name),
                waiting=held.count if held else 0,
                oldest_sent_at=held.oldest_sent_at if held else None,
                wait=timing.wait if timing else {f"p{p}": None for p in overview.PERCENTILES},
                finished=timing.count if timing else 0,
            )
        )
    return Queues(loads, seen, exact)
