"""tasktrail as Celery's result backend: ``CELERY_RESULT_BACKEND = "tasktrail"``.

Registered through the ``celery.result_backends`` entry point. Stores through the
same buffered, guarded write path as the signal subscribers, so ``AsyncResult``
and tasktrail's own API read the same record.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery import states as celery_states
from celery.backends.base import BaseBackend
from celery.result import result_from_tuple
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, InterfaceError
from django.utils import timezone

from .. import conf, states, store
from . import recorder


class TaskTrailBackend(BaseBackend):
    # Set by Celery's Backend.__init__; celery-types does not declare them.
    app: Celery
    serializer: str

    supports_failure_expires = True
    # Workers delete expired records themselves (see tasktrail.celery.upkeep), so
    # celery beat need not schedule its backend_cleanup task.
    supports_autoexpire = True
    # AsyncResult.get() polls; a short interval keeps .get() latency low and each
    # poll is a primary-key read.
    subpolling_interval = 0.05

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app, url=url, **kwargs)
        if self.serializer != "json":
            raise ImproperlyConfigured(
                f"tasktrail stores results as JSON; result_serializer is {self.serializer!r}. "
                "Set CELERY_RESULT_SERIALIZER = 'json' (Celery's default)."
            )

    def as_uri(self, include_password: bool = False) -> str:
        return "tasktrail://"

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        encoded = self.encode_result(result, state)
        recorder.outcome(
            task_id,
            state,
            result,
            encoded,
            traceback,
            request,
            recorder.expires_after(state, self.app, getattr(request, "task", None)),
            children=self.current_task_children(request),
        )
        return encoded

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        meta = store.celery_meta(task_id)
        if meta is None:
            # Celery's answer for an unknown id; tasktrail.get() raises TaskNotFound.
            return {"status": celery_states.PENDING, "result": None}
        # In Celery's states already: see tasktrail.states.celery_state.
        return self.meta_from_decoded(meta)

    def _forget(self, task_id: str) -> None:
        store.forget(task_id)

    def _save_group(self, group_id: str, result: Any) -> Any:
        now = timezone.now()
        expires = recorder.expires_after(states.SUCCESS, self.app, None)
        store.save_group(
            group_id, result.as_tuple(), now, None if expires is None else now + expires
        )
        return result

    def _restore_group(self, group_id: str) -> dict[str, Any] | None:
        stored = store.restore_group(group_id)
        if stored is None:
            return None
        return {"group_id": group_id, "result": result_from_tuple(stored, self.app)}

    def _delete_group(self, group_id: str) -> None:
        store.delete_group(group_id)

    def cleanup(self) -> None:
        store.delete_expired(timezone.now(), conf.get().CLEANUP_BATCH)

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, InterfaceError | DatabaseError)
