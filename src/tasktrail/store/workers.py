"""Workers' heartbeats, leases on fleet-wide chores, and the tasks silent workers left.

A worker writes its heartbeat every ``HEARTBEAT_INTERVAL`` together with the moment
after which it counts as silent (its own ``LOST_AFTER`` ahead). A task running on a
worker that went silent, stopped, or restarted since the task started is an orphan.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q

from .db import alias as _alias


@dataclasses.dataclass(frozen=True, slots=True)
class Orphan:
    """A task still running on a worker that is gone, with what is known of both."""

    task_id: str
    name: str
    attempt: int
    queue: str
    args: Any
    kwargs: Any
    owner_id: Any
    parent_id: str
    root_id: str
    group_id: str
    worker: str
    worker_pid: int | None
    started_at: datetime | None
    #: The worker's main process and heartbeat, as its row has them now.
    worker_main_pid: int
    worker_started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    #: The worker is alive again under the same name: the task belonged to its previous run.
    restarted: bool


def beat(
    hostname: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    silent_after: datetime,
    active: int,
    reserved: int,
) -> None:
    from ..models import Worker

    Worker.objects.using(_alias()).update_or_create(
        hostname=hostname,
        defaults={
            "pid": pid,
            "started_at": started_at,
            "last_seen": now,
            "silent_after": silent_after,
            "stopped_at": None,
            "active": active,
            "reserved": reserved,
        },
    )


def stop(hostname: str, pid: int, now: datetime) -> None:
    """A clean stop: tasks still marked running on this worker are orphans from now on."""
    from ..models import Worker

    Worker.objects.using(_alias()).filter(hostname=hostname, pid=pid).update(
        last_seen=now, silent_after=now, stopped_at=now, active=0, reserved=0
    )


def claim(name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take or renew the lease ``name`` until ``until``; ``False`` while another holds it.

    A conditional UPDATE, so it works alike on every database: at most one holder's
    update matches a lease that is free or its own.
    """
    from ..models import Lease

    leases = Lease.objects.using(_alias())
    with transaction.atomic(using=_alias()):
        free = Q(expires_at__lt=now) | Q(holder=holder)
        if leases.filter(free, name=name).update(holder=holder, expires_at=until):
            return True
        _, created = leases.get_or_create(
            name=name, defaults={"holder": holder, "expires_at": until}
        )
        return created


def release(name: str, holder: str) -> None:
    """Give a lease up, so another worker takes the chore at once."""
    from ..models import Lease

    Lease.objects.using(_alias()).filter(name=name, holder=holder).delete()


def orphans(now: datetime, limit: int = 500) -> list[Orphan]:
    """Running tasks whose worker is silent (or stopped), or restarted since they started."""
    from ..models import RUNNING, Task, Worker

    workers = {w.hostname: w for w in Worker.objects.using(_alias())}
    gone = [w.hostname for w in workers.values() if w.silent_after < now]
    where = Q(worker__in=gone)
    for w in workers.values():
        if w.silent_after >= now:
            where |= Q(worker=w.hostname, started_at__lt=w.started_at)
    tasks = Task.objects.using(_alias()).filter(RUNNING, where)[:limit]
    return [_orphan(t, workers[t.worker], now) for t in tasks]


def _orphan(task: Any, worker: Any, now: datetime) -> Orphan:
    return Orphan(
        task_id=task.task_id,
        name=task.name,
        attempt=task.attempt,
        queue=task.queue,
        args=task.args,
        kwargs=task.kwargs,
        owner_id=task.owner_id,
        parent_id=task.parent_id,
        root_id=task.root_id,
        group_id=task.group_id,
        worker=task.worker,
        worker_pid=task.worker_pid,
        started_at=task.started_at,
        worker_main_pid=worker.pid,
        worker_started_at=worker.started_at,
        last_seen=worker.last_seen,
        stopped_at=worker.stopped_at,
        restarted=worker.silent_after >= now,
    )
