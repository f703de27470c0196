"""Attempt numbers: 1 for a task's first run, one more for each retry, and one more for
each run Celery does not count as a retry (a message delivered again)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError

from .. import options, states, store
from ..exceptions import TaskNotFound

logger = logging.getLogger("tasktrail.celery")

#: Message header counting the runs Celery did not count as retries (re-deliveries of
#: the same message), so attempt numbers keep growing; retries carry it along.
RERUNS = options.RERUNS_HEADER


def number(request: Any) -> int:
    """The attempt ``request`` runs; 0 when it does not say."""
    retries = getattr(request, "retries", None)
    if not isinstance(retries, int):
        return 0
    reruns = getattr(request, RERUNS, None)
    return retries + 1 + (reruns if isinstance(reruns, int) else 0)


def count_rerun(request: Any, task_id: str) -> None:
    """Number a re-delivered message's run as a new attempt if an earlier run began.

    The broker delivers a message again when its worker died before acknowledging it
    (``acks_late``); Celery runs it under the same retry count, so tasktrail counts
    the extra run itself, in a header that later retries carry along.
    """
    try:
        stored = store.get(task_id)
    except TaskNotFound:
        return
    except DatabaseError:
        logger.warning("tasktrail: cannot read %s to number its re-run", task_id, exc_info=True)
        return
    if states.is_done(stored.state) and stored.state != states.LOST:
        return
    if states.order(stored.state, stored.attempt) < states.order(states.STARTED, number(request)):
        return
    reruns = stored.attempt - request.retries
    setattr(request, RERUNS, reruns)
    request.headers = {**(request.headers or {}), RERUNS: reruns}
