"""Django settings for Celery's own integration suite (``make compat``).

Celery's suite configures Celery itself (broker and backend from ``TEST_BROKER`` and
``TEST_BACKEND``); Django is here for the backends that store in Django's database:
tasktrail and django-celery-results' ``django-db``. ``COMPAT_DB=postgres`` stores in a
PostgreSQL test database named by ``COMPAT_PG_NAME``; otherwise a SQLite file in
``COMPAT_DIR`` (one per run, so the backends never share one).
"""

import os
from pathlib import Path

SECRET_KEY = "compat-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_celery_results",
    "tasktrail",
]
_DIR = Path(os.environ.get("COMPAT_DIR", "build/compat"))

if os.environ.get("COMPAT_DB", "sqlite") == "postgres":
    _name = os.environ.get("COMPAT_PG_NAME", "test_tasktrail_compat")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name,
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "TEST": {"NAME": _name},
        }
    }
else:
    _file = str(_DIR / f"{os.environ.get('COMPAT_RUN', 'compat')}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _file,
            # tests.settings' options: the worker's pool processes write beside the tests.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": _file},
        }
    }
