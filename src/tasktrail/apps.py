from __future__ import annotations

from django.apps import AppConfig


class TaskTrailConfig(AppConfig):
    name = "tasktrail"
    verbose_name = "tasktrail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            notify,
        )
        from .celery import progress, signals
        from .tasks import runner  # noqa: F401  (registers django.tasks' Celery task)

        signals.connect()
        progress.connect()
        notify.install()
