"""Live changes: tell web processes, fast, that a task's record changed.

Every process that writes the store publishes the ids each flush wrote (a hook on the
store, installed by the app config); every web process runs one listener that fans
the changes out in memory to the streams watching those tasks (:mod:`.hub`). Three
notifiers behind one interface (:class:`.base.Notifier`), chosen by
``TASKTRAIL["NOTIFY"]``: PostgreSQL LISTEN/NOTIFY, Redis pub/sub, or polling.
"""

from __future__ import annotations

import calendar
import functools
from typing import Any

from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver

from .. import conf, store
from ..records import TaskRecord
from .base import Notifier
from .hub import Hub, Mailbox, for_loop

__all__ = ["Hub", "Mailbox", "Notifier", "backend", "hub", "install", "version"]


def _celery_broker() -> object:
    from celery import current_app

    return current_app.conf.broker_url


def _redis_url(settings: conf.Settings, broker: object) -> str | None:
    if settings.REDIS_URL:
        return settings.REDIS_URL
    if isinstance(broker, str) and broker.startswith(("redis://", "rediss://")):
        return broker
    return None


def _choice(settings: conf.Settings, broker: object) -> str:
    """The notifier's name for these settings and this Celery broker URL."""
    if settings.NOTIFY != "auto":
        return settings.NOTIFY
    if connections[settings.DATABASE].vendor == "postgresql":
        return "postgres"
    return "redis" if _redis_url(settings, broker) else "polling"


@functools.cache
def backend() -> Notifier:
    """This process's notifier, chosen once (at first use, when Celery's app is loaded)."""
    settings = conf.get()
    broker = _celery_broker()
    name = _choice(settings, broker)
    if name == "postgres":
        from .postgres import PostgresNotifier

        return PostgresNotifier(settings.DATABASE)
    if name == "redis":
        from .redis import RedisNotifier

        url = _redis_url(settings, broker)
        if url is None:
            raise ValueError("TASKTRAIL['NOTIFY'] is 'redis' but no REDIS_URL is set")
        # Channels are global to a Redis server: one per database keeps projects apart.
        database = connections[settings.DATABASE].settings_dict["NAME"]
        return RedisNotifier(url, f"tasktrail:{database}")
    from .polling import PollingNotifier

    return PollingNotifier(settings.POLL_INTERVAL.total_seconds())


def _publish(rows: list[dict[str, Any]]) -> None:
    backend().publish([row["task_id"] for row in rows])


def install() -> None:
    """Publish every write of this process (called by the app config)."""
    store.on_write(_publish)
    # When the settings alone name Redis (Celery's app may not be loaded yet; a Redis
    # broker has kombu load redis-py anyway), its client is loaded at start-up.
    if _choice(conf.get(), None) == "redis":
        from .redis import load_client

        load_client()


def hub() -> Hub:
    """The running event loop's hub."""
    return for_loop(backend())


def version(record: TaskRecord) -> int:
    """The record's version: ``updated_at`` in microseconds, the stream's event id."""
    moment = record.updated_at
    return calendar.timegm(moment.utctimetuple()) * 1_000_000 + moment.microsecond


@receiver(setting_changed)
def _reset(*, setting: str, **_: object) -> None:
    if setting == "TASKTRAIL":
        backend.cache_clear()
