"""Errors raised by tasktrail's public API."""

from __future__ import annotations

from .states import InvalidState


class TaskNotFound(LookupError):
    """No task with this id was ever recorded (or its record has expired)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r} is recorded")
        self.task_id = task_id


class PayloadError(ValueError):
    """A value tasktrail was asked to store cannot be stored (not JSON, or too big)."""


__all__ = ["InvalidState", "PayloadError", "TaskNotFound"]
