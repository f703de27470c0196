"""Revocations sent through tasktrail, kept so that workers offline at the time honour them.

A worker loads them before it consumes, and picks up any it missed every heartbeat;
Celery's own revoke reaches only the workers online when it is sent.
"""

from __future__ import annotations

from datetime import datetime

from .db import alias as _alias

# Celery keeps at most this many revoked ids per worker (worker.state.REVOKES_MAX).
_KEPT = 50_000


def add(task_id: str, now: datetime) -> None:
    from ..models import Revocation

    Revocation.objects.using(_alias()).update_or_create(task_id=task_id, defaults={"at": now})


def since(moment: datetime | None) -> list[tuple[str, datetime]]:
    """Revocations recorded at or after ``moment`` (all when ``None``), oldest first."""
    from ..models import Revocation

    rows = Revocation.objects.using(_alias()).order_by("-at")
    if moment is not None:
        rows = rows.filter(at__gte=moment)
    return list(reversed(rows.values_list("task_id", "at")[:_KEPT]))
