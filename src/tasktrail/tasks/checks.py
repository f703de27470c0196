"""The system check for django.tasks' backend: ``tasktrail.E010`` when ``TASKS`` names
it on a Django without django.tasks (before 6.0), which would ignore ``TASKS`` silently."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.core import checks

NEEDS_DJANGO = (6, 0)


@checks.register()
def check_django_version(**_: Any) -> list[checks.CheckMessage]:
    if django.VERSION >= NEEDS_DJANGO:
        return []
    tasks = getattr(settings, "TASKS", None) or {}
    return [
        checks.Error(
            f"TASKS[{alias!r}] uses {params['BACKEND']}, which needs Django >= 6.0 "
            f"(django.tasks); this is Django {django.get_version()}",
            hint="Upgrade Django, or keep sending these tasks with Celery's own API.",
            id="tasktrail.E010",
        )
        for alias, params in tasks.items()
        if isinstance(params, dict) and str(params.get("BACKEND", "")).startswith("tasktrail.")
    ]
