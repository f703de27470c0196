"""Operators' actions on a task (retry, revoke, ...), kept in its history table.

An audit entry is a history row with ``action`` set; :func:`tasktrail.store.history`
leaves them out, so attempts and transitions read as before. Written directly, not
through the write buffer: an action is rare, and the operator's page reads it at once.
The cleanup deletes them with the task's other history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..records import Action
from .db import alias as _alias


def add(task_id: str, action: str, at: datetime, by: str, detail: dict[str, Any]) -> None:
    """Record that ``by`` did ``action`` to ``task_id`` at ``at``; the state column keeps
    a marker, so nothing reading states mistakes the row for one."""
    from ..models import Transition

    Transition.objects.using(_alias()).create(
        task_id=task_id,
        state="",
        attempt=0,
        at=at,
        worker="",
        detail={"by": by, **detail},
        action=action,
    )


def actions(task_id: str) -> list[Action]:
    """``task_id``'s audit entries, oldest first (served by the history's task_id index)."""
    from ..models import Transition

    rows = (
        Transition.objects.using(_alias()).filter(task_id=task_id).exclude(action="").order_by("id")
    )
    return [_action(r.action, r.at, r.detail or {}) for r in rows]


def _action(action: str, at: datetime, detail: dict[str, Any]) -> Action:
    rest = {k: v for k, v in detail.items() if k != "by"}
    return Action(action, at, str(detail.get("by", "")), rest)
