"""Recording beside another result backend (``CELERY_RESULT_BACKEND = "redis://..."``).

Why: the signals bring every state but one. A task's own ``self.update_state(...)``
(celery-progress's ``PROGRESS``, any custom state) goes straight to the result backend,
with no signal; with tasktrail as the backend it arrives through ``store_result``, with
another backend it never reached the store. So at each task's start the backend this
thread's task stores through gets its ``store_result`` wrapped, once per instance
(Celery makes one per thread): the custom states it stores are recorded too. Celery's
own states it stores (``STARTED``, ``RETRY``, the outcomes) are left to the signals,
which record them already.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import states
from . import recorder

logger = logging.getLogger("tasktrail.celery")

#: Set on a backend instance whose ``store_result`` records custom states.
_MARK = "_tasktrail_records_custom_states"


def watch(task: Any) -> None:
    """Record the custom states ``task``'s backend stores (not if it is tasktrail's)."""
    from .backend import TaskTrailBackend

    backend = task.backend
    if isinstance(backend, TaskTrailBackend) or getattr(backend, _MARK, False):
        return
    store_result = backend.store_result

    def recording(task_id: str, result: Any, state: str, *args: Any, **kwargs: Any) -> Any:
        # Celery's signature: (task_id, result, state, traceback=None, request=None, ...).
        stored = store_result(task_id, result, state, *args, **kwargs)
        if states.rank(state) == states.RANK_CUSTOM:
            request = kwargs.get("request", args[1] if len(args) > 1 else None)
            _record(backend, task_id, result, state, request)
        return stored

    backend.store_result = recording
    setattr(backend, _MARK, True)


def _record(backend: Any, task_id: str, meta: Any, state: str, request: Any) -> None:
    try:
        recorder.outcome(
            task_id, state, meta, backend.encode_result(meta, state), None, request, None
        )
    except states.InvalidState as exc:
        # The other backend took it: the task goes on as it would without tasktrail
        # (with tasktrail as the backend, update_state raises this instead).
        logger.warning("tasktrail: not recording state %r of task %s: %s", state, task_id, exc)
