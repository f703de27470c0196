"""tasktrail: true task status and results for Django on Celery."""

from __future__ import annotations

from .api import get, history, progress, recent
from .exceptions import InvalidState, PayloadError, TaskNotFound
from .owner import owned_by
from .records import Progress, TaskError, TaskRecord, Transition

__all__ = [
    "InvalidState",
    "PayloadError",
    "Progress",
    "TaskError",
    "TaskNotFound",
    "TaskRecord",
    "Transition",
    "get",
    "history",
    "owned_by",
    "progress",
    "recent",
]
