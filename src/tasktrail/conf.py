"""The ``TASKTRAIL`` settings dict: defaults, validation and a cached view of it."""

from __future__ import annotations

import dataclasses
import functools
import os
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import options, retries
from .retries import RetryPolicy


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    #: Alias in ``DATABASES`` that holds tasktrail's tables.
    DATABASE: str = "default"
    #: How long a success is kept. ``None``: Celery's ``result_expires`` (1 day by default).
    RESULT_EXPIRES: timedelta | None = None
    #: How long a failure (or revocation, or lost task) is kept.
    #: ``None``: Celery's ``result_failure_expires``, else 7 days.
    FAILURE_EXPIRES: timedelta | None = None
    #: The database outage a worker rides out: its running tasks become ``LOST`` (or
    #: re-run, if they opted in) once the database's clock is ``LOST_AFTER + 2 *
    #: HEARTBEAT_INTERVAL`` past its last heartbeat (docs/explanation/liveness.md).
    LOST_AFTER: timedelta = timedelta(seconds=30)
    #: How often every worker records its heartbeat; one worker at a time also looks
    #: for tasks left on silent workers this often. Must be well below ``LOST_AFTER``.
    HEARTBEAT_INTERVAL: timedelta = timedelta(seconds=5)
    #: How often one worker at a time deletes expired records. ``None``: never from
    #: workers (run ``manage.py tasktrail cleanup`` instead).
    CLEANUP_INTERVAL: timedelta | None = timedelta(minutes=5)
    #: Tasks deleted per transaction by the cleanup: small batches keep locks short and
    #: spread the write-ahead log, so concurrent writers barely notice.
    CLEANUP_BATCH: int = 500
    #: The project-wide retry policy, a dict of :class:`tasktrail.retries.RetryPolicy`
    #: fields (``max_attempts``, ``backoff``, ``backoff_max``, ``jitter``, ``retry_on``).
    #: ``None``: tasks retry only as their own Celery options say.
    RETRY: RetryPolicy | None = None
    #: Arguments larger than this (as JSON) are stored as a short marker instead.
    MAX_ARGS_BYTES: int = 64 * 1024
    #: A result larger than this (as JSON) fails the task with a clear reason.
    MAX_RESULT_BYTES: int = 1024 * 1024
    #: Progress meta larger than this (as JSON) is stored as a short marker instead.
    MAX_META_BYTES: int = 16 * 1024
    #: Progress and error messages are cut to this many bytes (UTF-8), with a marker.
    MAX_MESSAGE_BYTES: int = 16 * 1024
    #: Tracebacks are cut to their last this many bytes, with a marker.
    MAX_TRACEBACK_BYTES: int = 64 * 1024
    #: Argument names whose values are never stored: a name containing one of these, in
    #: any case and at any depth of the arguments (``db_password``, ``{"auth": {"Token":
    #: ...}}``), is stored as ``"[redacted]"``.
    REDACT_KWARGS: frozenset[str] = frozenset({"password", "secret", "token", "api_key"})
    #: Writes are buffered per process and flushed at least this often.
    FLUSH_INTERVAL: timedelta = timedelta(milliseconds=20)
    #: On PostgreSQL, prepare the write statement and Celery's point read (what
    #: ``AsyncResult`` reads) once per connection (psycopg's protocol-level prepared
    #: statements, which PgBouncer supports from 1.21). Turn it off behind an older
    #: PgBouncer in transaction mode.
    PREPARE_WRITES: bool = True
    #: Tasks buffered in a process at which its flush thread writes at once instead of
    #: waiting for ``FLUSH_INTERVAL``. While the database is down (the thread keeps its
    #: backoff) a buffer this full is moved to ``SPOOL_DIR`` after each failed attempt,
    #: so memory stays bounded; nothing is dropped and the caller never blocks.
    MAX_BUFFERED: int = 10_000
    #: How long a stopping process (a pool process, a worker's warm shutdown, a web or
    #: producer process at exit) waits for its last writes; what is not written by
    #: then is spooled to ``SPOOL_DIR`` and written by a worker later.
    FINAL_FLUSH_TIMEOUT: timedelta = timedelta(seconds=5)
    #: Directory where stopping processes keep the rows they could not write, and from
    #: which every worker's main process writes them once the database answers. Must
    #: be writable and survive restarts of the processes (not of the machine, unless it
    #: is on persistent storage); shared by the web and worker processes of one host.
    #: ``None``: ``tasktrail-spool-<database name>`` in the system's temporary directory.
    SPOOL_DIR: str | None = None
    #: Record ``RECEIVED`` from the worker's main process.
    RECORD_RECEIVED: bool = True
    #: ``RECEIVED`` is written only for tasks still waiting in the worker this long
    #: after it received them (or held for an ETA); the others start at once.
    RECEIVED_AFTER: timedelta = timedelta(milliseconds=100)
    #: Progress a task reports is written at most this often; the latest value wins and
    #: the last one is always written before the task's outcome.
    PROGRESS_INTERVAL: timedelta = timedelta(milliseconds=100)
    #: How live views learn of changes: ``"postgres"`` (LISTEN/NOTIFY), ``"redis"``
    #: (pub/sub), ``"polling"``, or ``"auto"``: ``"postgres"`` on a PostgreSQL database,
    #: else ``"redis"`` if ``REDIS_URL`` is set or the Celery broker is Redis, else polling.
    NOTIFY: str = "auto"
    #: Redis of the ``"redis"`` notifier. ``None``: the Celery broker's URL.
    REDIS_URL: str | None = None
    #: How often the ``"polling"`` notifier reads the watched tasks' versions.
    POLL_INTERVAL: timedelta = timedelta(milliseconds=250)
    #: An idle live stream sends a comment this often, so proxies keep it open.
    KEEPALIVE_INTERVAL: timedelta = timedelta(seconds=15)
    #: How long a link made by ``tasktrail.status_url()`` is valid, unless it says.
    LINK_EXPIRES: timedelta = timedelta(days=1)
    #: Users holding this permission see every task, like staff. ``None``: staff only.
    VIEW_PERMISSION: str | None = "tasktrail.view_task"
    #: Whether viewers other than staff see a task's result and error summary; a task's
    #: own ``tasktrail_show_result`` option overrides it.
    SHOW_RESULT: bool = True
    #: The dashboard lists a task as stuck when it is not done and its record has not
    #: changed for this long (waiting with no worker taking it, or hung while running).
    STUCK_AFTER: timedelta = timedelta(minutes=15)
    #: The longest the workers and queues pages and the metrics endpoint wait for the
    #: broker's queue lengths; past it they say the broker did not answer.
    BROKER_TIMEOUT: timedelta = timedelta(seconds=2)
    #: Prometheus' scraper may present this as ``Authorization: Bearer <token>`` to read
    #: the metrics endpoint (at least 16 characters). ``None``: no token is accepted.
    METRICS_TOKEN: str | None = None
    #: Users holding this permission may read the metrics endpoint, like staff.
    #: ``None``: staff only.
    METRICS_PERMISSION: str | None = None
    #: Live streams (SSE or WebSocket) one viewer may hold open in one process: a
    #: logged-in user, else a session, else a signed link, else a client address. One
    #: more is refused with 429 and ``Retry-After``; the page polls meanwhile. Browsers
    #: open at most 6 connections per host over HTTP/1.1, so a page needs few.
    STREAMS_PER_VIEWER: int = 32
    #: Live streams one web process holds open at once; one more is refused with 503
    #: and ``Retry-After``. An idle stream costs about 17 KiB of the process's memory behind
    #: ``tasktrail.asgi`` (10,000 idle streams: 238 MiB, 70 MiB of it the process itself;
    #: ``python -m bench.streams``).
    STREAMS_PER_PROCESS: int = 10_000

    @property
    def flush_seconds(self) -> float:
        return self.FLUSH_INTERVAL.total_seconds()


_DEFAULT_FAILURE_EXPIRES = timedelta(days=7)
_DURATIONS = {
    "RESULT_EXPIRES",
    "FAILURE_EXPIRES",
    "LOST_AFTER",
    "FLUSH_INTERVAL",
    "FINAL_FLUSH_TIMEOUT",
    "RECEIVED_AFTER",
    "HEARTBEAT_INTERVAL",
    "CLEANUP_INTERVAL",
    "PROGRESS_INTERVAL",
    "POLL_INTERVAL",
    "KEEPALIVE_INTERVAL",
    "LINK_EXPIRES",
    "STUCK_AFTER",
    "BROKER_TIMEOUT",
}
_NULLABLE = {"RESULT_EXPIRES", "FAILURE_EXPIRES", "CLEANUP_INTERVAL"}
_INTERVALS = {
    "HEARTBEAT_INTERVAL",
    "CLEANUP_INTERVAL",
    "POLL_INTERVAL",
    "KEEPALIVE_INTERVAL",
    "LINK_EXPIRES",
    "STUCK_AFTER",
    "BROKER_TIMEOUT",
}
#: A shorter bearer token can be guessed.
METRICS_TOKEN_MIN = 16
NOTIFIERS = ("auto", "postgres", "redis", "polling")
_POSITIVE_INTS = {
    "MAX_ARGS_BYTES",
    "MAX_RESULT_BYTES",
    "MAX_META_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_TRACEBACK_BYTES",
    "MAX_BUFFERED",
    "CLEANUP_BATCH",
    "STREAMS_PER_VIEWER",
    "STREAMS_PER_PROCESS",
}


def _duration(name: str, value: object, label: str = "") -> timedelta | None:
    label = label or f"TASKTRAIL[{name!r}]"
    if value is None and name in _NULLABLE:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ImproperlyConfigured(
            f"{label} must be a timedelta or a number of seconds, got {value!r}"
        )
    if seconds < 0:
        raise ImproperlyConfigured(f"{label} must not be negative, got {value!r}")
    if seconds == 0 and name in _INTERVALS:
        raise ImproperlyConfigured(f"{label} must be more than 0 seconds")
    return timedelta(seconds=seconds)


def _coerce(name: str, value: Any) -> Any:
    if name in _DURATIONS:
        return _duration(name, value)
    if name == "NOTIFY" and value not in NOTIFIERS:
        raise ImproperlyConfigured(
            f"TASKTRAIL['NOTIFY'] must be one of {', '.join(NOTIFIERS)}; got {value!r}"
        )
    if name == "REDACT_KWARGS":
        return frozenset(str(v).lower() for v in value)
    if name == "RETRY" and value is not None:
        try:
            return retries.parse(value)
        except (ValueError, ImportError) as exc:
            raise ImproperlyConfigured(f"TASKTRAIL['RETRY']: {exc}") from None
    if name == "SPOOL_DIR" and value is not None:
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise ImproperlyConfigured(
                f"TASKTRAIL['SPOOL_DIR'] must be a directory path or None, got {value!r}"
            )
        return str(value)
    if (
        name == "METRICS_TOKEN"
        and value is not None
        and (not isinstance(value, str) or len(value) < METRICS_TOKEN_MIN)
    ):
        raise ImproperlyConfigured(
            f"TASKTRAIL['METRICS_TOKEN'] must be a string of at least {METRICS_TOKEN_MIN}"
            " characters, or None"
        )
    if name == "METRICS_PERMISSION" and value is not None and not isinstance(value, str):
        raise ImproperlyConfigured(
            "TASKTRAIL['METRICS_PERMISSION'] must be a permission name "
            f"('app_label.codename') or None, got {value!r}"
        )
    if name in _POSITIVE_INTS and (
        not isinstance(value, int) or isinstance(value, bool) or value <= 0
    ):
        raise ImproperlyConfigured(f"TASKTRAIL[{name!r}] must be a positive int")
    return value


def load(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown TASKTRAIL setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    settings = Settings(**{name: _coerce(name, value) for name, value in raw.items()})
    if settings.LOST_AFTER < 2 * settings.HEARTBEAT_INTERVAL:
        # One late heartbeat would then declare a live worker's tasks lost.
        raise ImproperlyConfigured(
            f"TASKTRAIL['LOST_AFTER'] ({settings.LOST_AFTER.total_seconds()} s) must be at "
            f"least twice HEARTBEAT_INTERVAL ({settings.HEARTBEAT_INTERVAL.total_seconds()} s)"
        )
    return settings


@functools.cache
def get() -> Settings:
    return load(getattr(django_settings, "TASKTRAIL", {}))


def expires_after(
    succeeded: bool,
    celery_result_expires: object,
    celery_failure_expires: object,
    task_override: object = None,
) -> timedelta | None:
    """How long a finished task is kept: the task's own option, tasktrail's setting,
    Celery's, else the default."""
    if task_override is not None:
        option = options.RESULT_EXPIRES if succeeded else options.FAILURE_EXPIRES
        return _duration(option, task_override, f"the task option {option}")
    settings = get()
    if succeeded:
        if settings.RESULT_EXPIRES is not None:
            return settings.RESULT_EXPIRES
        return _duration("RESULT_EXPIRES", celery_result_expires)
    if settings.FAILURE_EXPIRES is not None:
        return settings.FAILURE_EXPIRES
    return _duration("FAILURE_EXPIRES", celery_failure_expires) or _DEFAULT_FAILURE_EXPIRES


@receiver(setting_changed)
def _reset(*, setting: str, **_: object) -> None:
    if setting == "TASKTRAIL":
        get.cache_clear()
