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

#: The one place the version is written: pyproject.toml reads it (hatch's dynamic
#: version), so the wheel's metadata and ``tasktrail.__version__`` cannot differ.
__version__ = "0.1.0"

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
    "__version__",
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
