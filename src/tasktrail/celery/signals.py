"""Celery signal subscribers: how tasktrail sees every task without wrapping it.

Publish-side: ``before_task_publish`` stamps the owner header, ``after_task_publish``
records ``PENDING``. Worker-side: ``task_received`` (main process) records
``RECEIVED``, ``task_prerun`` records ``STARTED`` (no ``task_track_started``
needed). Outcomes arrive through the result backend when tasktrail is the backend;
otherwise (or for ``ignore_result`` tasks) through the outcome signals below.
Beside another result backend, the custom states a task sets with ``update_state``
are recorded from that backend's ``store_result`` (:mod:`.beside`).
``task_rejected`` (and undecodable bodies, see ``_worker_ready``) turn a message the
worker refused into ``FAILURE``. ``worker_init``
applies retry policies and starts the worker's upkeep thread; ``worker_shutdown`` stops it.
"""

from __future__ import annotations

from typing import Any

from celery import current_app, current_task, signals
from celery import states as celery_states

from .. import conf, notify, options, owner, store
from . import beside, canvas, received, recorder, retry, upkeep


def _recorded_by_backend(task: Any) -> bool:
    from .backend import TaskTrailBackend

    return isinstance(task.backend, TaskTrailBackend) and not recorder.ignores_result(
        task, task.request
    )


def _stamp_owner(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None or headers.get(owner.HEADER) is not None:
        return
    pk = owner.current()
    if pk is None and current_task:
        # A task sent from inside a task belongs to the parent's owner.
        pk = getattr(current_task.request, owner.HEADER, None)
    if pk is not None:
        headers[owner.HEADER] = pk


def _sending(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        recorder.sending(headers)


def _published(
    sender: Any = None,
    body: Any = None,
    routing_key: str = "",
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if headers is None:
        return
    task = current_app.tasks.get(sender) if isinstance(sender, str) else None
    recorder.published(
        headers,
        body,
        routing_key,
        None if task is None else retry.max_retries(task),
        options.show_result(task),
    )
    canvas.published(current_app, headers, body)


def _received(request: Any = None, **_: Any) -> None:
    if request is not None and conf.get().RECORD_RECEIVED:
        received.received(request)


def _prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    if task is not None and task_id:
        recorder.started(task, task_id)
        beside.watch(task)


def _retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    if request is None:
        return
    if sender is not None and not _recorded_by_backend(sender):
        exc = getattr(reason, "exc", None)
        _outcome(sender, request.id, celery_states.RETRY, exc, request)
    recorder.retry_scheduled(request, getattr(reason, "when", None))


def _outcome(task: Any, task_id: str, state: str, value: Any, request: Any, tb: Any = None) -> None:
    backend = task.backend
    recorder.outcome(
        task_id,
        state,
        value,
        backend.encode_result(value, state)
        if not recorder.ignores_result(task, task.request)
        else None,
        tb,
        request,
        recorder.expires_after(state, task.app, task.name),
    )


def _success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if sender is not None and not _recorded_by_backend(sender):
        stored = None if recorder.ignores_result(sender, sender.request) else result
        _outcome(sender, sender.request.id, celery_states.SUCCESS, stored, sender.request)


def _failure(
    sender: Any = None, task_id: str = "", exception: Any = None, einfo: Any = None, **_: Any
) -> None:
    if sender is not None and not _recorded_by_backend(sender):
        tb = getattr(einfo, "traceback", None)
        _outcome(sender, task_id, celery_states.FAILURE, exception, sender.request, tb)


def _revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    if sender is not None and request is not None and not _recorded_by_backend(sender):
        from celery.exceptions import TaskRevokedError

        _outcome(sender, request.id, celery_states.REVOKED, TaskRevokedError("revoked"), request)


def _rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    if sender is not None:
        recorder.rejected(sender.app, message, exc, sender.hostname)


def _pool_size(worker: Any) -> int | None:
    """The pool's size (``--concurrency``, the maximum under ``--autoscale``), read at
    each heartbeat: ``worker_init`` comes before ``auto`` is resolved and the
    autoscaler set up."""
    size = getattr(worker, "max_concurrency", None) or getattr(worker, "concurrency", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _worker_init(sender: Any = None, **_: Any) -> None:
    # The main process, before the pool forks: what is set up here the pool inherits.
    if sender is not None:
        retry.apply(sender.app)
        # The notifier (and its client library) chosen once here, not by each pool
        # process on its first flush, which would hold that flush up for the import.
        notify.backend()
        upkeep.start(sender.app, sender.hostname, lambda: _pool_size(sender))


def _worker_ready(sender: Any = None, **_: Any) -> None:
    """Also record a FAILURE for a message whose body the worker cannot decode.

    Celery logs and drops such a message without a signal; its consumer's
    ``on_decode_error`` is looked up at each call, so wrapping it here catches them.
    """
    consumer = sender
    if consumer is None or getattr(consumer, "_tasktrail_decode_errors", False):
        return
    drop = consumer.on_decode_error

    def on_decode_error(message: Any, exc: Exception) -> None:
        try:
            recorder.rejected(consumer.app, message, exc, consumer.hostname)
        finally:
            drop(message, exc)

    consumer.on_decode_error = on_decode_error
    consumer._tasktrail_decode_errors = True


def _worker_shutdown(**_: Any) -> None:
    upkeep.stop()


def _flush(**_: Any) -> None:
    # Bounded by FINAL_FLUSH_TIMEOUT; what a stopping process cannot write is spooled,
    # and the worker's main process writes it when the database answers (upkeep).
    store.close()


def connect() -> None:
    """Subscribe to Celery's signals; idempotent (weak=False keeps the handlers alive)."""
    for signal, handler in (
        (signals.before_task_publish, _stamp_owner),
        (signals.before_task_publish, _sending),
        (signals.after_task_publish, _published),
        (signals.task_received, _received),
        (signals.task_prerun, _prerun),
        (signals.task_retry, _retry),
        (signals.task_success, _success),
        (signals.task_failure, _failure),
        (signals.task_revoked, _revoked),
        (signals.task_rejected, _rejected),
        (signals.worker_init, _worker_init),
        (signals.worker_ready, _worker_ready),
        (signals.worker_process_shutdown, _flush),
        # Upkeep first: its last words (stopped, leases released) are then written.
        (signals.worker_shutdown, _worker_shutdown),
        (signals.worker_shutdown, _flush),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"tasktrail.{handler.__name__}")
