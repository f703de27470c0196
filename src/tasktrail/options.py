"""Every name tasktrail reads from a task or a message: the one registry of them.

Task options are set in the decorator (``@shared_task(tasktrail_show_result=False)``);
message headers travel with each message and reach the worker's ``task.request``.
Everything that reads one uses the constant here, and the system check
``tasktrail.E003`` names any other ``tasktrail_*`` attribute of a registered task
(``tasktrail_retries=3`` would otherwise be ignored without a word).

A leaf module: no imports from the rest of tasktrail, so every layer may use it.
"""

from __future__ import annotations

from typing import Any, Final

PREFIX: Final = "tasktrail_"

# Task options.
SHOW_RESULT: Final = "tasktrail_show_result"
RESULT_EXPIRES: Final = "tasktrail_result_expires"
FAILURE_EXPIRES: Final = "tasktrail_failure_expires"
RETRY: Final = "tasktrail_retry"

#: The task options and what they mean (docs/reference/settings.md lists the same).
TASK_OPTIONS: Final = {
    RESULT_EXPIRES: "How long this task's success is kept (a `timedelta` or seconds).",
    FAILURE_EXPIRES: "How long its failure, revocation or loss is kept.",
    RETRY: "A retry policy that refines `RETRY` (a dict), or `False` to opt out.",
    SHOW_RESULT: (
        "Whether non-staff viewers see its result and error messages (`True` or `False`; "
        "overrides `SHOW_RESULT`)."
    ),
}

# Message headers.
OWNER_HEADER: Final = "tasktrail_owner"
RERUNS_HEADER: Final = "tasktrail_reruns"
RECORD_AS_HEADER: Final = "tasktrail_record_as"

#: The message headers tasktrail sets and reads, and what they carry.
HEADERS: Final = {
    OWNER_HEADER: "The primary key of the user the task belongs to (set when it is sent).",
    RERUNS_HEADER: (
        "How many runs Celery did not count as retries (re-deliveries), so attempt "
        "numbers keep growing; retries carry it along."
    ),
    RECORD_AS_HEADER: (
        "What to record a task as: a dict with the `name` recorded instead of the Celery "
        "task's (and its `max_retries`), kept whole in the history entry of its sending "
        "(the django.tasks runner sends the Django task's path, backend, queue, priority, "
        "run_after and retry limit)."
    ),
}

# What the task row's ``show_result`` column holds: the task's own option, as the
# process that sent or ran the task read it. Empty: no process that knew the task has
# recorded it yet (sent by name from a process that never imported it, or recorded
# before the column existed); tasktrail.access then shows the outcome to staff only.
SHOWN: Final = "yes"
HIDDEN: Final = "no"
#: The task sets no option: ``TASKTRAIL["SHOW_RESULT"]`` decides, when it is read.
DEFAULT: Final = "default"
UNKNOWN: Final = ""


def show_result(task: Any) -> str:
    """The ``show_result`` value to record for ``task`` (a Celery task, or ``None``).

    Anything but ``True``, ``False`` or unset reads as hidden: a mistyped value
    (``"no"``, truthy) must not show what the task meant to hide.
    """
    if task is None:
        return UNKNOWN
    value = getattr(task, SHOW_RESULT, None)
    if value is None:
        return DEFAULT
    return SHOWN if value is True else HIDDEN
