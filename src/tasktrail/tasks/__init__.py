"""django.tasks on Celery, with tasktrail's status: ``TASKS = {"default": {"BACKEND":
"tasktrail.tasks.CeleryBackend"}}``. Needs Django >= 6.0 (django.tasks); on Django 5.2 the
package imports (Celery's autodiscovery looks for ``<app>.tasks``) but offers nothing, and
the system check ``tasktrail.E010`` names a ``TASKS`` entry that points here."""

from __future__ import annotations

import django

from . import checks  # noqa: F401  (registers tasktrail.E010)
from .checks import NEEDS_DJANGO

if django.VERSION >= NEEDS_DJANGO:
    from .backend import CeleryBackend, CeleryTask

    __all__ = ["NEEDS_DJANGO", "CeleryBackend", "CeleryTask"]
