"""How django.tasks' terms map to tasktrail's and Celery's: a task's status, and its
priority on each broker. Pure functions; the one home of both rules."""

from __future__ import annotations

from typing import Final

from .. import states

#: django.tasks' statuses (``TaskResultStatus`` values), named here so this module needs
#: no Django 6 import.
READY: Final = "READY"
RUNNING: Final = "RUNNING"
SUCCESSFUL: Final = "SUCCESSFUL"
FAILED: Final = "FAILED"

#: django.tasks' priority range (``TASK_MIN_PRIORITY``, ``TASK_MAX_PRIORITY``): higher runs first.
MIN_PRIORITY: Final = -100
MAX_PRIORITY: Final = 100
#: Celery's priority range on RabbitMQ (a queue declared with ``x-max-priority`` 9,
#: higher first) and on Redis (kombu's default steps 0, 3, 6, 9, and 0 first).
BROKER_MAX: Final = 9
#: Transports (kombu ``driver_type``) that take ``0`` as the highest priority.
LOWEST_FIRST: Final = frozenset({"redis"})


def status(state: str) -> str:
    """The django.tasks status of a tasktrail state, by its phase: waiting (``PENDING``,
    ``RECEIVED``, ``RETRY``) is ``READY``; running (``STARTED``, ``PROGRESS``, any custom
    state) is ``RUNNING``; done is ``SUCCESSFUL`` for ``SUCCESS``, else ``FAILED``
    (``FAILURE``, ``REVOKED``, and ``LOST``, which a later real report may replace)."""
    phase = states.phase(state)
    if phase is states.Phase.WAITING:
        return READY
    if phase is states.Phase.RUNNING:
        return RUNNING
    return SUCCESSFUL if state == states.SUCCESS else FAILED


def broker_priority(priority: int, driver_type: str) -> int:
    """Celery's message priority for django.tasks' ``priority`` on a transport.

    -100…100 is cut into 10 even steps, 0…9 (-100 → 0, 0 → 5, 100 → 9; each step is
    about 20 wide), higher first as on RabbitMQ; on Redis the scale is turned over
    (100 → 0), since kombu serves 0 first there and buckets 0-2, 3-5, 6-8 and 9 into
    its 4 queues (so django.tasks' 100 and 60 share the first bucket).
    """
    span = MAX_PRIORITY - MIN_PRIORITY
    step = min(BROKER_MAX, (priority - MIN_PRIORITY) * (BROKER_MAX + 1) // span)
    return BROKER_MAX - step if driver_type in LOWEST_FIRST else step
