"""Saved groups (``GroupResult.save()``), for Celery's ``GroupResult.restore()``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .db import alias


def save(group_id: str, result: Any, now: datetime, expires_at: datetime | None) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(alias()).update_or_create(
        group_id=group_id,
        defaults={"result": result, "created_at": now, "expires_at": expires_at},
    )


def restore(group_id: str) -> Any:
    from ..models import GroupResult

    row = GroupResult.objects.using(alias()).filter(group_id=group_id).first()
    return None if row is None else row.result


def delete(group_id: str) -> None:
    from ..models import GroupResult

    GroupResult.objects.using(alias()).filter(group_id=group_id).delete()
