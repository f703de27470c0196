"""django.tasks' ``TaskResult`` built from tasktrail's record of a task: its row, and its
attempts read from the history (:func:`tasktrail.attempts`), so every attempt's worker and
error shows, not only the last."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from .. import runs, states, store
from ..celery.errors import class_path
from ..exceptions import TaskNotFound
from ..records import Attempt, TaskRecord, Transition
from . import mapping

if TYPE_CHECKING:
    # Generic in django-stubs only.
    type AnyTask = Task[..., Any]
    type AnyResult = TaskResult[..., Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Sent:
    """What the backend sends with a task so the worker and :func:`read` rebuild it: the
    ``tasktrail_record_as`` header, kept in the history entry of its sending."""

    name: str
    backend: str
    queue_name: str
    priority: int
    #: ISO 8601 for a datetime, seconds for a timedelta; ``None`` for neither.
    run_after: str | float | None
    #: Its policy's retry limit, recorded when it is sent (``None``: unlimited or none known).
    max_retries: int | None = None

    @classmethod
    def of(cls, task: AnyTask) -> Sent:
        after = task.run_after
        when: str | float | None = None
        if isinstance(after, datetime):
            when = after.isoformat()
        elif isinstance(after, timedelta):
            when = after.total_seconds()
        from . import policy

        limit = policy.limit(policy.of(task))
        return cls(task.module_path, task.backend, task.queue_name, task.priority, when, limit)

    @classmethod
    def parse(cls, value: Any) -> Sent | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                str(value["name"]),
                str(value["backend"]),
                str(value["queue_name"]),
                int(value["priority"]),
                value.get("run_after"),
                value.get("max_retries") if isinstance(value.get("max_retries"), int) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def header(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def task(self) -> AnyTask:
        """The Django task sent, with the options it was sent with; ``LookupError`` if
        ``name`` is not a django.tasks ``Task`` (the runner runs nothing else)."""
        task = load(self.name)
        after: datetime | timedelta | None = None
        if isinstance(self.run_after, str):
            after = parse_datetime(self.run_after)
        elif isinstance(self.run_after, int | float):
            after = timedelta(seconds=self.run_after)
        return dataclasses.replace(
            task,
            backend=self.backend,
            queue_name=self.queue_name,
            priority=self.priority,
            run_after=after,  # type: ignore[arg-type]  # a timedelta too: backend.validate_task
        )


def load(path: str) -> AnyTask:
    """The django.tasks ``Task`` at ``path``; ``LookupError`` for anything else."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise LookupError(f"{path!r} cannot be imported: {exc}") from None
    # type(), not isinstance(): a Celery task proxy would resolve itself to answer.
    if not issubclass(type(found), Task):
        raise LookupError(f"{path!r} is a {type(found).__name__}, not a django.tasks Task")
    task: AnyTask = found
    return task


def _sent(record: TaskRecord, history: list[Transition]) -> AnyTask:
    for t in history:
        if t.state == states.PENDING and (sent := Sent.parse(t.detail)) is not None:
            return sent.task()
    # The sender's PENDING write was lost (the worker's STARTED recorded the task
    # anyway): the task as declared, without the options it was sent with.
    return load(record.name)


def read(task_id: str, backend: str) -> AnyResult:
    """The ``TaskResult`` of ``task_id``; ``TaskResultDoesNotExist`` for an id never
    sent, and for a task that is not a django.tasks task (a plain Celery task's id)."""
    try:
        record = store.get(task_id)
    except TaskNotFound:
        raise TaskResultDoesNotExist(task_id) from None
    history = store.history(task_id)
    try:
        task = _sent(record, history)
    except LookupError as exc:
        raise TaskResultDoesNotExist(
            f"{task_id} is not a django.tasks task ({exc}); tasktrail.get() reads it"
        ) from None
    return build(record, runs.from_history(history), task, backend)


def _errors(record: TaskRecord, attempts: list[Attempt]) -> list[TaskError]:
    found = [a.error for a in attempts if a.error is not None]
    if (
        record.error is not None
        and record.state in states.UNSUCCESSFUL
        and (not found or found[-1] != record.error)
    ):
        # Ended without a run that reports it (revoked before it started).
        found.append(record.error)
    return [
        TaskError(exception_class_path=class_path(e.type), traceback=e.traceback or "")
        for e in found
    ]


def arguments(record: TaskRecord) -> tuple[list[Any], dict[str, Any]]:
    """The arguments as stored: redacted and capped by tasktrail's payload rules
    (a capped list reads as ``[{"tasktrail_omitted": ...}]``)."""
    args: Any = record.args
    if not isinstance(args, list):
        args = [] if args is None else [args]
    return args, record.kwargs if isinstance(record.kwargs, dict) else {}


def build(record: TaskRecord, attempts: list[Attempt], task: AnyTask, backend: str) -> AnyResult:
    started = [a.started_at for a in attempts if a.started_at is not None]
    status = TaskResultStatus(mapping.status(record.state))
    args, kwargs = arguments(record)
    result: AnyResult = TaskResult(
        task=task,
        id=record.id,
        status=status,
        enqueued_at=record.sent_at or record.received_at or (started[0] if started else None),
        started_at=started[0] if started else None,
        finished_at=record.finished_at if record.ready else None,
        last_attempted_at=started[-1] if started else None,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=_errors(record, attempts),
        worker_ids=[a.worker for a in attempts],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", record.result)
    return result
