"""Chains' steps, learned from the first step's message.

Celery sends a chain's later steps only when the earlier ones finish; until then they
travel in the message's ``chain`` option (last step first). The first step's publish
is the one moment every step's id is known, so it is read there, once: a later step's
message (its ``root_id`` is the first step's id, not its own) costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from .. import states, store
from . import recorder

logger = logging.getLogger("tasktrail.canvas")


def _step(signature: Any) -> tuple[str, str] | None:
    """A signature of the ``chain`` option as ``(id, name)``; a group or chord step
    is named by its kind and found by its group's id."""
    if not isinstance(signature, Mapping):
        return None
    task_id = (signature.get("options") or {}).get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return None
    kind = signature.get("subtask_type")
    return task_id, str(kind if kind in ("group", "chord") else signature.get("task") or "")


def steps(headers: Mapping[str, Any], body: Any) -> list[tuple[str, str]]:
    """The chain a first step's message starts, first step to last; ``[]`` if none."""
    task_id = headers.get("id")
    if not task_id or headers.get("root_id") not in (None, task_id):
        return []
    embed = body[2] if isinstance(body, list | tuple) and len(body) >= 3 else None
    remaining = embed.get("chain") if isinstance(embed, Mapping) else None
    if not remaining or not isinstance(remaining, list | tuple):
        return []
    later = [found for s in reversed(remaining) if (found := _step(s)) is not None]
    return [(str(task_id), str(headers.get("task") or "")), *later]


def published(app: Any, headers: Mapping[str, Any], body: Any) -> None:
    """Record the chain a message starts, if it starts one."""
    found = steps(headers, body)
    if not found:
        return
    now = timezone.now()
    expires = recorder.expires_after(states.SUCCESS, app, None)
    try:
        store.save_chain(found[0][0], found, now, None if expires is None else now + expires)
    except DatabaseError as error:
        # The chain still runs; only its page lacks the steps not yet sent.
        logger.warning("tasktrail: chain %s not recorded: %s", found[0][0], error)
