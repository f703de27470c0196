"""One Django 6.1 project, three django.tasks backends on Celery: CMP_BACKEND picks one
(see README.md). CMP_DB names a PostgreSQL database of your own, CMP_BROKER a Redis."""

import os

KIND = os.environ["CMP_BACKEND"]  # tasktrail | celery | fennel
SECRET_KEY = "cmp"
USE_TZ = True
INSTALLED_APPS: list[str] = ["django.contrib.auth", "django.contrib.contenttypes", "cmpapp"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("CMP_DB", "cmp_django_tasks"),
        "HOST": "127.0.0.1",
        "USER": "postgres",
    }
}
CELERY_BROKER_URL = os.environ.get("CMP_BROKER", "redis://127.0.0.1:6379/4")
CELERY_TASK_DEFAULT_QUEUE = f"cmp_{KIND}"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
BACKENDS = {
    "tasktrail": "tasktrail.tasks.CeleryBackend",
    "celery": "django_tasks_celery.CeleryBackend",
    "fennel": "django_tasks_fennel.CeleryBackend",
}
TASKS = {"default": {"BACKEND": BACKENDS[KIND], "QUEUES": []}}
if KIND == "tasktrail":
    INSTALLED_APPS.append("tasktrail")
    CELERY_RESULT_BACKEND = "tasktrail"
    TASKTRAIL = {"LOST_AFTER": 3.0, "HEARTBEAT_INTERVAL": 0.5}
else:
    # What each one's README configures: Celery's Redis result backend, extended.
    CELERY_RESULT_BACKEND = CELERY_BROKER_URL
    CELERY_RESULT_EXTENDED = True
    CELERY_TASK_TRACK_STARTED = True
    if KIND == "fennel":
        INSTALLED_APPS.append("django_tasks_fennel")
