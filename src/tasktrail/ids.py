"""What a task id may be: the one rule the tables, the store's reads, the URLs and the
CLI apply.

Celery lets callers choose ids (``apply_async(task_id=...)``), so an id is any text
that fits the column: spaces, ``/``, ``..`` and any Unicode included. Two kinds of text
can never be stored, so they name no task: text longer than the column, and text no
database keeps as sent (a NUL, which PostgreSQL refuses in text with ``DataError``;
lone surrogates, which are not UTF-8). Reads answer "not found" for them without
asking the database.
"""

from __future__ import annotations

from typing import Final, TypeGuard

#: Characters in a task id column (``CharField(max_length=...)``) and its id-like
#: neighbours (``parent_id``, ``root_id``, ``group_id``).
MAX_LENGTH: Final = 255


def valid(task_id: object) -> TypeGuard[str]:
    """Whether ``task_id`` could name a stored task."""
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_LENGTH:
        return False
    if "\x00" in task_id:
        return False
    if task_id.isascii():  # UUIDs: the write path checks every event
        return True
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def problem(task_id: str) -> str | None:
    """Why ``task_id`` names no task, for a person; ``None`` when it may."""
    if valid(task_id):
        return None
    return f"malformed task id {task_id[:60]!r}: expected 1 to {MAX_LENGTH} characters, without NUL"
