"""tasktrail as Celery's result backend: ``CELERY_RESULT_BACKEND = "tasktrail"``.

Registered through the ``celery.result_backends`` entry point. Stores through the
same buffered, guarded write path as the signal subscribers, so ``AsyncResult``
and tasktrail's own API read the same record.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, maybe_signature
from celery import states as celery_states
from celery.backends.base import BaseBackend
from celery.exceptions import ChordError
from celery.result import GroupResult, allow_join_result, result_from_tuple
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, InterfaceError
from django.utils import timezone

from .. import conf, states, store
from . import recorder

logger = logging.getLogger("tasktrail.chord")


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

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Any = None,
    ) -> Any:
        # AsyncResult.get() checks the result's parents (on_interval) before its own
        # state, as with Celery's Redis backend: a chord whose header failed raises the
        # header task's error, not its callback's ChordError (which, with the native
        # join, is stored before get() first looks).
        if on_interval is not None:
            on_interval()
        return super().wait_for(
            task_id, timeout=timeout, interval=interval, no_ack=no_ack, on_interval=on_interval
        )

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

    # -- chords: a native join on the store (not Celery's chord_unlock polling) --------
    #
    # Without these, Celery sends a celery.chord_unlock task per chord that re-reads
    # every header result once a second until all are ready (bench/chords.py: about
    # 1 s from the last header task to the callback, and a poll of N reads a second).
    # Here each header task adds one to the chord's row as it finishes, and the one
    # that completes the count sends the callback at once. As Celery's Redis backend:
    # the size comes from set_chord_size, a failed header task makes the callback fail
    # with a ChordError naming it, once the whole header has returned.

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> None:
        self.ensure_chords_allowed()
        header_result = self.app.GroupResult(*header_result_args)
        # Saved, so the last header task restores the header's structure (nested
        # groups included) and users can GroupResult.restore() it.
        header_result.save(backend=self)
        now = timezone.now()
        expires = recorder.expires_after(states.SUCCESS, self.app, None)
        store.chord_applied(
            str(header_result.id),
            str(getattr(body, "id", None) or ""),
            now,
            None if expires is None else now + expires,
        )

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        store.chord_size(group_id, chord_size, timezone.now())

    def add_to_chord(self, chord_id: str, result: Any) -> None:
        store.chord_added(chord_id, timezone.now())

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> None:
        group_id, task_id = request.group, request.id
        if not group_id or not task_id:
            return
        # This task's outcome is written before it counts: the task that completes the
        # count reads every header result from the database.
        store.settle(task_id)
        done, total = store.chord_part(group_id, timezone.now())
        if total is None or done < total:
            return
        if done > total:
            # A header task delivered twice (acks_late after a lost worker): the
            # callback went already.
            logger.warning("tasktrail: chord %s counted %d of %d parts", group_id, done, total)
            return
        try:
            self._complete_chord(group_id, maybe_signature(request.chord, app=self.app))
        finally:
            # What completing wrote (a failed callback, the chain after it failed too)
            # lands now, not a flush interval after the header's failure shows.
            store.sync()

    def _complete_chord(self, group_id: str, callback: Any) -> None:
        app = self.app
        deps = GroupResult.restore(group_id, backend=self)
        if deps is None:
            self.chord_error_from_stack(
                callback, ChordError(f"GroupResult {group_id} no longer exists")
            )
            return
        try:
            with allow_join_result():
                values = deps.join(timeout=app.conf.result_chord_join_timeout, propagate=True)
        except Exception as exc:  # the header's failure, whatever it raised
            # celery-types does not declare it; Celery's own backends name the culprit so.
            report: Any = deps._failed_join_report()  # type: ignore[attr-defined]
            culprit = next(report, None)
            reason = repr(exc) if culprit is None else f"Dependency {culprit.id} raised {exc!r}"
            logger.error("tasktrail: chord %s: %s", group_id, reason)
            error = ChordError(reason)
            error.__cause__ = exc
            self.chord_error_from_stack(callback, error)
            return
        publish = getattr(app.amqp, "_retry_publish", None)
        try:
            if publish is None:
                callback.delay(values)
            else:
                publish(callback.delay, values)
        except Exception as exc:  # the broker refused it: the callback fails, not hangs
            logger.exception("tasktrail: chord %s: callback not sent", group_id)
            error = ChordError(f"Callback error: {exc!r}")
            error.__cause__ = exc
            self.chord_error_from_stack(callback, error)

    def cleanup(self) -> None:
        store.delete_expired(timezone.now(), conf.get().CLEANUP_BATCH)

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, InterfaceError | DatabaseError)
