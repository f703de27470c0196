"""Settings for tasktrail's own tests.

``TT_DB=postgres`` (the integration layer's default in CI) or ``sqlite``;
``TT_DB_NAME`` points a worker process at the database the test run created;
``TT_BROKER`` is the broker for worker tests (a URL, or ``rabbitmq`` for a vhost of the
run's own: see tests/brokers.py); ``TT_TEST_DB_NAME`` names the
PostgreSQL test database, so concurrent runs on one server need not share it.
"""

import os
import tempfile
from pathlib import Path

from tests import brokers

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tasktrail",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tasktrail.middleware.OwnerMiddleware",
]
ROOT_URLCONF = "tests.testapp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        # What the admin's templates need.
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

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
            "TEST": {"NAME": os.environ.get("TT_TEST_DB_NAME", "test_tasktrail")},
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

CELERY_BROKER_URL = brokers.url()
# tests/integration/test_beside_redis_backend.py starts workers on Celery's Redis backend.
CELERY_RESULT_BACKEND = os.environ.get("TT_RESULT_BACKEND", "tasktrail")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TT_QUEUE", "celery")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Workers in tests heartbeat every second (so whichever holds the lost-task check runs
# it often); fault tests start workers with shorter timings through these variables.
TASKTRAIL: dict[str, object] = {
    "HEARTBEAT_INTERVAL": float(os.environ.get("TT_HEARTBEAT_INTERVAL", "1"))
}
if not brokers.is_redis(CELERY_BROKER_URL):
    # The Redis notifier's tests still have a Redis to publish through.
    TASKTRAIL["REDIS_URL"] = brokers.spare_redis()
if "TT_NOTIFY" in os.environ:
    # Live tests start workers that publish through a given notifier.
    TASKTRAIL["NOTIFY"] = os.environ["TT_NOTIFY"]
if "TT_LOST_AFTER" in os.environ:
    TASKTRAIL["LOST_AFTER"] = float(os.environ["TT_LOST_AFTER"])
if "TT_RECEIVED_AFTER" in os.environ:
    # The documentation's worker: its transcripts show the common path, PENDING to STARTED.
    TASKTRAIL["RECEIVED_AFTER"] = float(os.environ["TT_RECEIVED_AFTER"])
if "TT_CLEANUP_INTERVAL" in os.environ:
    TASKTRAIL["CLEANUP_INTERVAL"] = float(os.environ["TT_CLEANUP_INTERVAL"])
if "TT_VISIBILITY_TIMEOUT" in os.environ:
    # How soon Redis gives an unacknowledged message (its worker died) to another worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": float(os.environ["TT_VISIBILITY_TIMEOUT"]),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }

# django.tasks on Celery (tests/tasks/): Django's "default" queue is Celery's default one.
TASKS = {
    "default": {
        "BACKEND": "tasktrail.tasks.CeleryBackend",
        "QUEUES": [],  # any queue: tests use queues of their own
        "OPTIONS": {"RETRY": {"backoff": 0.1, "jitter": False}},
    }
}
