from __future__ import annotations

from django.apps import AppConfig


class TaskTrailConfig(AppConfig):
    name = "tasktrail"
    verbose_name = "tasktrail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .celery import signals

        signals.connect()
