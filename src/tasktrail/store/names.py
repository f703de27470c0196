"""Known task names and queues: the small table searches and filters read.

Task names are few (tens to hundreds) however many tasks run, so "name by part" is
answered from ``tasktrail_name`` (one row per (name, queue) pair) and becomes
``name IN (...)`` on the task table: no ``LIKE`` over 10 M rows, no trigram index for
every write to maintain. Measured at 10 M tasks (bench/README.md, "Search"): the
search pages stay within the bounded scans of :mod:`.queries`, and the write path
pays a set lookup per row, plus one ``INSERT ... ON CONFLICT DO NOTHING`` the first
time a process writes a pair.

A pair is remembered by this process only once its insert committed: a rolled-back
transaction (a test's) leaves no name the table lacks. A pair outlives its tasks
(cleanup keeps it): a filter on such a name finds nothing, correctly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from django.db import transaction
from django.db.models.signals import post_migrate

from .db import alias
from .schema import Row

#: Most names a search by part expands to; past it the operator types more.
MAX_MATCHES = 200

_lock = threading.Lock()
_known: set[tuple[str, str]] = set()


def remember(rows: Iterable[Row]) -> None:
    """Add the (name, queue) pairs of ``rows`` this process has not written yet.

    Called by the write path after a flush, in its thread: one set of the rows' pairs
    and a subset test (about 15 µs for 200 rows, against a flush's 10 ms), and a
    statement only for a pair new to this process."""
    pairs = {(r["name"], r["queue"]) for r in rows}
    with _lock:
        if pairs <= _known:
            return
        new = pairs - _known
    from ..models import TaskName

    using = alias()
    stored = sorted({(str(n), str(q or "")) for n, q in new if n})
    if stored:
        TaskName.objects.using(using).bulk_create(
            [TaskName(name=n, queue=q) for n, q in stored], ignore_conflicts=True
        )

    def committed() -> None:
        with _lock:
            _known.update(new)

    transaction.on_commit(committed, using=using)


def forget_all(**_: object) -> None:
    """Forget what this process wrote (the tables were flushed or migrated)."""
    with _lock:
        _known.clear()


post_migrate.connect(forget_all, dispatch_uid="tasktrail.store.names")


def matching(field: str, part: str) -> list[str]:
    """The known names (``field="name"``) or queues (``"queue"``) containing ``part``,
    case-insensitively; at most :data:`MAX_MATCHES`, exact matches first."""
    from ..models import TaskName

    rows = TaskName.objects.using(alias()).exclude(**{field: ""})
    values = sorted(set(rows.filter(**{f"{field}__icontains": part}).values_list(field, flat=True)))
    exact = [v for v in values if v == part]
    return (exact + [v for v in values if v != part])[:MAX_MATCHES]


def known(field: str) -> list[str]:
    """Every known name or queue, sorted (the admin's list filters)."""
    from ..models import TaskName

    rows = TaskName.objects.using(alias()).exclude(**{field: ""})
    return sorted(set(rows.values_list(field, flat=True)))
