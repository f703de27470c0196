"""The Celery app, configured from Django's settings (``CELERY_*``) in the usual way."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

app = Celery("exampleproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
