"""A scenario written with Django's own tasks framework (``django.tasks``): the same
worker runs it through ``tasktrail.tasks.CeleryBackend``, and tasktrail records it under
its own name, with its attempts and progress, like the Celery tasks beside it."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.tasks import Task, TaskContext, TaskResultStatus, task

import tasktrail


class ContactsServiceBusy(ConnectionError):
    """A transient failure: the task's policy retries it."""


@task(
    takes_context=True,
    max_retries=2,
    autoretry_for=(ContactsServiceBusy,),
    retry_backoff=1,
    retry_jitter=False,
)
def import_contacts(context: TaskContext, rows: int = 8) -> dict[str, Any]:
    """Fails on its first attempt (the service is busy), then imports ``rows`` rows,
    reporting progress."""
    if context.attempt == 1:
        raise ContactsServiceBusy("contacts service busy, try again")
    for row in range(1, rows + 1):
        tasktrail.progress(row, rows, f"contact {row} of {rows}")
    return {"rows": rows, "attempt": context.attempt}


@dataclasses.dataclass(frozen=True, slots=True)
class DjangoTaskScenario:
    task: Task[..., Any]
    description: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def send(self, queue: str) -> str:
        """Enqueue it on the Celery queue ``queue``; its id."""
        return self.task.using(queue_name=queue).enqueue(**self.kwargs).id


SCENARIOS = {
    "django_task": DjangoTaskScenario(
        import_contacts,
        "A django.tasks @task: fails once (service busy), is retried after 1 s, reports "
        "progress, returns a dict.",
    )
}


def expect_import_contacts(status: dict[str, Any], trail: list[str]) -> list[str]:
    """``manage.py demo --check``: what the record and django.tasks' result must say."""
    problems = [] if status["state"] == "SUCCESS" else [f"expected SUCCESS, got {status['state']}"]
    result = import_contacts.get_result(status["task_id"])
    if result.status != TaskResultStatus.SUCCESSFUL or result.attempts != 2:
        problems.append(f"get_result(): {result.status} after {result.attempts} attempts")
    paths = [e.exception_class_path for e in result.errors]
    if paths != ["demo.django_tasks.ContactsServiceBusy"]:
        problems.append(f"expected one ContactsServiceBusy error, got {paths}")
    if status["name"] != "demo.django_tasks.import_contacts":
        problems.append(f"recorded as {status['name']!r}")
    return problems


EXPECTATIONS = {"django_task": expect_import_contacts}
