"""The same @task functions for every backend."""

import os
import sys
import tempfile
import time

from django.dispatch import receiver
from django.tasks import task
from django.tasks.signals import task_finished

LOG = os.path.join(os.environ.get("CMP_DIR", tempfile.gettempdir()), "finished.log")


@receiver(task_finished)
def _finished(sender, task_result, **kwargs):
    with open(LOG, "a") as f:
        f.write(f"{task_result.id} {task_result.status}\n")


@task
def add(x, y):
    return x + y


@task
def slow_add(x, y):
    time.sleep(1.5)
    return x + y


@task
def fail():
    raise ValueError("boom")


@task
def exit_now():
    sys.exit(3)


@task
def not_json():
    return object()


@task
def hold():
    time.sleep(60)


@task
def whoami(tag):
    return [tag, os.getpid()]
