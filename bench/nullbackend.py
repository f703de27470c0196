"""A Celery result backend that stores nothing: what Celery itself charges for a backend.

With ``CELERY_RESULT_BACKEND = "bench.nullbackend:NullBackend"`` Celery runs its whole
result path (the producer's ``AsyncResult``, the worker's ``mark_as_done``, which
encodes the result and calls the store, the retry wrapper around it) but the store
itself is a no-op and every read answers ``PENDING``. Set beside ``celery-ignore`` (no
backend) it shows what having a backend costs in Celery; beside ``tasktrail-postgres``,
what tasktrail adds on top.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import BaseBackend


class NullBackend(BaseBackend):
    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        return result

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        return {"status": states.PENDING, "result": None}

    def _forget(self, task_id: str) -> None:
        return None

    def as_uri(self, include_password: bool = False) -> str:
        return "null://"
