"""Settings for tasktrail's own tests.

``TT_DB=postgres`` (the integration layer's default in CI) or ``sqlite``;
``TT_DB_NAME`` points a worker process at the database the test run created;
``TT_BROKER`` is the broker URL for worker tests.
"""

import os
import tempfile
from pathlib import Path

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tasktrail",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tasktrail.middleware.OwnerMiddleware",
]
ROOT_URLCONF = "tests.testapp.urls"

_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
_TMP = Path(os.environ.get("TT_TMP", tempfile.gettempdir()))

if os.environ.get("TT_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("TT_DB_NAME", "tasktrail"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "TEST": {"NAME": "test_tasktrail"},
        }
    }
else:
    _name = os.environ.get("TT_DB_NAME", str(_TMP / "tasktrail-tests.sqlite3"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _name,
            "OPTIONS": _SQLITE_OPTIONS,
            # A file, not memory: the flush thread and worker processes must see it.
            "TEST": {"NAME": _name},
        }
    }

CELERY_BROKER_URL = os.environ.get("TT_BROKER", "redis://127.0.0.1:6379/9")
CELERY_RESULT_BACKEND = "tasktrail"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TT_QUEUE", "celery")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
