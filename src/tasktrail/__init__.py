"""tasktrail: true task status and results for Django on Celery."""

from __future__ import annotations

from .api import (
    Reporter,
    attempts,
    chain,
    get,
    group,
    history,
    progress,
    recent,
    reporter,
    status_url,
)
from .exceptions import InvalidState, PayloadError, TaskNotFound
from .owner import owned_by
from .records import (
    Attempt,
    ChainStatus,
    GroupStatus,
    Progress,
    Step,
    TaskError,
    TaskRecord,
    Transition,
)

__all__ = [
    "Attempt",
    "ChainStatus",
    "GroupStatus",
    "InvalidState",
    "PayloadError",
    "Progress",
    "Reporter",
    "Step",
    "TaskError",
    "TaskNotFound",
    "TaskRecord",
    "Transition",
    "attempts",
    "chain",
    "get",
    "group",
    "history",
    "owned_by",
    "progress",
    "recent",
    "reporter",
    "status_url",
]
