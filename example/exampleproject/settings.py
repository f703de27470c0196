"""Settings of tasktrail's example project.

Runs with no server by default: SQLite in ``example/var/demo.sqlite3`` and kombu's
``filesystem://`` broker in ``example/var/broker/``. Environment variables switch
to servers, each on its own:

``TASKTRAIL_DEMO_DB=postgres``
    Use PostgreSQL. libpq reads the connection from the usual ``PG*`` variables
    (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``); the database is
    ``PGDATABASE``, default ``tasktrail_demo``, and must exist
    (``createdb tasktrail_demo``).
``TASKTRAIL_DEMO_BROKER=<url>``
    Use this Celery broker, e.g. ``redis://127.0.0.1:6379/0`` or
    ``amqp://guest:guest@127.0.0.1:5672//``.
``TASKTRAIL_DEMO_DEBUG=1``
    Django's debug pages (off by default: Celery warns that DEBUG leaks memory
    in workers).

Example: ``TASKTRAIL_DEMO_DB=postgres PGHOST=127.0.0.1 PGUSER=postgres
TASKTRAIL_DEMO_BROKER=redis://127.0.0.1:6379/0 python example/manage.py demo``.
"""

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
BROKER_DIR = VAR_DIR / "broker"

SECRET_KEY = "tasktrail-example-only-not-secret"
DEBUG = os.environ.get("TASKTRAIL_DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    # The admin gives the example a login page for staff, who then see tasktrail's
    # dashboard at /tasktrail/ (``manage.py createsuperuser`` makes one).
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The admin's CSS and JavaScript: served by asgi.py (see STATIC_URL).
    "django.contrib.staticfiles",
    "tasktrail",
    "demo",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After authentication: tasks sent by a request belong to its user.
    "tasktrail.middleware.OwnerMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "exampleproject.urls"
ASGI_APPLICATION = "exampleproject.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
USE_TZ = True
TIME_ZONE = "UTC"
# The admin's styles and scripts. asgi.py serves them straight from the apps' static
# folders with Django's own ASGIStaticFilesHandler (what runserver uses), so the demo
# needs no collectstatic and no extra package. A deployed site serves STATIC_ROOT from
# its web server or with WhiteNoise instead (after collectstatic). tasktrail's own
# widget and dashboard assets need neither: tasktrail's URLs serve them.
STATIC_URL = "static/"


def _database() -> dict[str, Any]:
    if os.environ.get("TASKTRAIL_DEMO_DB", "sqlite") == "postgres":
        # HOST, USER, ... left out: libpq takes them from the PG* variables.
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "tasktrail_demo"),
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "demo.sqlite3",
        # The web server, the worker's processes and their flush threads all
        # write: WAL, a busy timeout and immediate transactions avoid
        # "database is locked" (tasktrail's check tasktrail.W001).
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": _database()}
# SQLite's file and the check's worker log live here.
VAR_DIR.mkdir(exist_ok=True)

# kombu's filesystem transport is the no-server default: each message is a file
# in one folder that the producer writes and every worker polls. Measured on
# this kind of machine it runs about 1,300 no-op tasks/s with 2 worker
# processes and picks a message up in about 40 ms at a 50 ms polling interval,
# plenty for a demo. It also supports fanout (the exchange tables live in
# control_folder), which Celery's remote control needs, so revoke works. The
# SQLAlchemy transport, the other server-less choice, would poll the same
# SQLite file that every status write goes to.
# "localhost" only because kombu warns when a URL names no host.
CELERY_BROKER_URL = os.environ.get("TASKTRAIL_DEMO_BROKER", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem:"):
    # kombu's own transport, but writing each message atomically (see broker.py).
    CELERY_BROKER_TRANSPORT = "exampleproject.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder for both directions: the producer and the worker share it.
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    # Without an event loop (this transport has none), the worker's main process
    # otherwise blocks while every pool process is busy and a task waits, and
    # stops reading remote-control commands: a revoke would wait for a free slot.
    CELERY_WORKER_POOL_PUTLOCKS = False
    # The transport does not create its folders, and any process importing
    # these settings (manage.py, the worker, the web server) may be first.
    for _name in ("queue", "control", "processed"):
        (BROKER_DIR / _name).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = "tasktrail"
# Django's tasks framework on the same workers (demo/django_tasks.py).
TASKS = {"default": {"BACKEND": "tasktrail.tasks.CeleryBackend", "QUEUES": []}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
