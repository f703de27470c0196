"""tasktrail as Celery's result backend: ``CELERY_RESULT_BACKEND = "tasktrail"``.

Registered through the ``celery.result_backends`` entry point. Stores through the
same buffered, guarded write path as the signal subscribers, so ``AsyncResult``
and tasktrail's own API read the same record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, maybe_signature
from celery import states as celery_states
from celery.backends.base import BaseBackend
from celery.exceptions import ChordError
from celery.exceptions import TimeoutError as CeleryTimeoutError
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
    # Celery's flag for ResultSet.join_native (a bulk read of many results per poll,
    # through get_many), not for chords: tasktrail has no get_many, so GroupResult.get()
    # polls member by member (one primary-key read each). Chords join natively anyway,
    # through on_chord_part_return below.
    supports_native_join = False

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
        """Celery's polling wait, but the result's parents are checked (``on_interval``)
        after each read *before* a ready result is returned, as Celery's Redis backend
        does: a chord whose header failed raises the header task's error, not the
        callback's ChordError, however soon the callback failed."""
        self._ensure_not_eager()  # type: ignore[attr-defined]
        elapsed = 0.0
        while True:
            meta = self.get_task_meta(task_id)
            if on_interval is not None:
                on_interval()
            if meta["status"] in celery_states.READY_STATES:
                return meta
            if timeout is not None and elapsed >= timeout:
                raise CeleryTimeoutError("The operation timed out.")
            nap = interval if timeout is None else min(interval, timeout - elapsed)
            time.sleep(nap)
            elapsed += nap

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
    # that completes the count sends the callback at once. As Celery's Redis backend,
    # the size comes from set_chord_size and a failed header task makes the callback
    # fail with a ChordError naming it; here at once, not after the rest of the header.

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
        now = timezone.now()
        if state in celery_states.PROPAGATE_STATES and store.chord_failed(group_id, now):
            # The first header task to fail fails the chord at once, and its failure
            # lands in the same write as the callback's and the chain's after it: no
            # reader sees the header failed while what follows still reads PENDING.
            # (Celery's Redis backend waits for the rest of the header first; the
            # callback's ChordError names the failed task the same way.)
            self._fail_chord(group_id, task_id, result, request)
        # This task's outcome is written before it counts: the task that completes the
        # count reads every header result from the database.
        store.settle(task_id)
        done, total = store.chord_part(group_id, task_id, now)
        if total is None or done < total:
            return
        if done > total:
            # A guard, not a path: a header task delivered again counts once
            # (store.chord_part answers it with no total). A count above the size
            # means the callback went already.
            logger.warning("tasktrail: chord %s counted %d of %d parts", group_id, done, total)
            return
        try:
            self._complete_chord(group_id, maybe_signature(request.chord, app=self.app))
        finally:
            # What completing wrote (a failed callback, the chain after it failed too)
            # lands now, not a flush interval after the header's failure shows.
            store.sync()

    def _fail_chord(self, group_id: str, task_id: str, exc: Any, request: Any) -> None:
        reason = f"Dependency {task_id} raised {exc!r}"
        logger.error("tasktrail: chord %s: %s", group_id, reason)
        error = ChordError(reason)
        if isinstance(exc, BaseException):
            error.__cause__ = exc
        try:
            self.chord_error_from_stack(maybe_signature(request.chord, app=self.app), error)
        finally:
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
