"""Workers' heartbeats, leases on fleet-wide chores, and the tasks silent workers left.

Every moment liveness is judged by comes from the DATABASE's clock (``Now()``, which is
``STATEMENT_TIMESTAMP()`` on PostgreSQL and the SQLite library's clock on SQLite), never
from a worker's: a heartbeat stamps ``last_seen`` and ``silent_after`` when the UPDATE
runs, so a write held up by an outage lands fresh instead of already stale, and a worker
whose clock is off cannot look silent (or alive) for it. The orphan check and the leases
compare against the same clock, in SQL. The rule and its bounds:
docs/explanation/liveness.md.

A task running on a worker that went silent, stopped, or restarted since the task started
is an orphan.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, Q, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

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


@dataclasses.dataclass(frozen=True, slots=True)
class MainProcess:
    """A worker's main process: the one whose heartbeat its row records."""

    hostname: str
    pid: int


def _db_now_plus(delta: timedelta) -> ExpressionWrapper[CombinedExpression]:
    """The database's clock ``delta`` ahead, computed in SQL."""
    return ExpressionWrapper(Now() + Value(delta), output_field=DateTimeField())


def beat(
    hostname: str,
    pid: int,
    started_at: datetime,
    silent_in: timedelta,
    active: int,
    reserved: int,
    pool: int | None = None,
) -> datetime:
    """Record a heartbeat; return the moment the database stamped on it (its clock).

    ``pool`` is the worker's pool size: carried by the heartbeat, so the workers page
    reads it from this table instead of asking every worker over the broker."""
    from ..models import Worker

    values: dict[str, Any] = {
        "pid": pid,
        "started_at": started_at,
        "last_seen": Now(),
        "silent_after": _db_now_plus(silent_in),
        "stopped_at": None,
        "active": active,
        "reserved": reserved,
        "pool": pool,
    }
    rows = Worker.objects.using(_alias())
    # One plain UPDATE, no transaction around it: a transaction's start time would be
    # the stamp otherwise, and an outage between its statements would make it stale.
    if not rows.filter(hostname=hostname).update(**values):
        try:
            with transaction.atomic(using=_alias()):
                rows.create(hostname=hostname, **values)
        except IntegrityError:  # created meanwhile by a process of the same name
            rows.filter(hostname=hostname).update(**values)
    stamped: datetime = rows.filter(hostname=hostname).values_list("last_seen", flat=True).get()
    return stamped


def stop(hostname: str, pid: int) -> None:
    """A clean stop: tasks still marked running on this worker are orphans from now on."""
    from ..models import Worker

    Worker.objects.using(_alias()).filter(hostname=hostname, pid=pid).update(
        last_seen=Now(), silent_after=Now(), stopped_at=Now(), active=0, reserved=0
    )


def pools() -> dict[str, int | None]:
    """Each worker's pool size as its last heartbeat said (``None``: not reported)."""
    from ..models import Worker

    return dict(Worker.objects.using(_alias()).values_list("hostname", "pool"))


def claim(name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``seconds``; ``False`` while another holds it.

    A conditional UPDATE, so it works alike on every database: at most one holder's
    update matches a lease that is free or its own. Expiry is on the database's clock,
    so a worker whose clock runs ahead cannot take a lease that is still held.
    """
    from ..models import Lease

    leases = Lease.objects.using(_alias())
    until = _db_now_plus(timedelta(seconds=seconds))
    with transaction.atomic(using=_alias()):
        free = Q(expires_at__lt=Now()) | Q(holder=holder)
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


def orphans(checker: MainProcess | None = None, limit: int = 500) -> list[Orphan]:
    """Running tasks whose worker is silent (or stopped), or restarted since they started.

    Silence is ``silent_after`` passed by the database's clock. ``checker`` is the main
    process asking: its own row never counts as silent (it is running this very check,
    whatever its heartbeat row says after an outage); its previous runs' tasks still do.
    """
    from ..models import RUNNING, Task, Worker

    silent = ExpressionWrapper(Q(silent_after__lt=Now()), output_field=BooleanField())
    rows = Worker.objects.using(_alias()).annotate(silent=silent)
    workers = {w.hostname: w for w in rows}
    for w in workers.values():
        if checker is not None and (w.hostname, w.pid) == (checker.hostname, checker.pid):
            w.silent = False
    gone = [w.hostname for w in workers.values() if w.silent]
    where = Q(worker__in=gone)
    for w in workers.values():
        if not w.silent:
            where |= Q(worker=w.hostname, started_at__lt=w.started_at)
    tasks = Task.objects.using(_alias()).filter(RUNNING, where)[:limit]
    return [_orphan(t, workers[t.worker]) for t in tasks]


def _orphan(task: Any, worker: Any) -> Orphan:
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
        restarted=not worker.silent,
    )
