"""Notifier plumbing that needs no server: payload limits and the automatic choice."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tasktrail import notify
from tasktrail.notify.base import MAX_PAYLOAD, parse, payloads


def test_payloads_stay_under_postgres_limit_and_carry_every_id() -> None:
    ids = [f"task-{n:05d}-" + "é" * 40 for n in range(2000)]
    chunks = list(payloads(ids))
    assert len(chunks) > 1
    assert all(len(chunk.encode()) <= MAX_PAYLOAD for chunk in chunks)
    assert [i for chunk in chunks for i in parse(chunk)] == ids


@pytest.mark.parametrize("noise", ["", "not json", '{"a": 1}', "[1, null]", b"\xff"])
def test_anything_else_on_the_channel_is_ignored(noise: str | bytes) -> None:
    assert parse(noise) == []


@pytest.mark.parametrize(
    ("tasktrail", "broker", "expected"),
    [
        ({}, "redis://127.0.0.1:6379/9", "redis"),
        ({}, "amqp://guest@localhost//", "polling"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/3"}, "amqp://guest@localhost//", "redis"),
        ({"NOTIFY": "polling"}, "redis://127.0.0.1:6379/9", "polling"),
    ],
)
def test_the_automatic_choice_on_sqlite(
    tasktrail: dict[str, str], broker: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery's own override, read first by every version: assigning app.conf.broker_url
    # is not seen on Celery 5.5 and 5.6, where the namespaced CELERY_BROKER_URL wins.
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    try:
        with override_settings(TASKTRAIL=tasktrail):
            assert notify.backend().name == expected
    finally:
        notify.backend.cache_clear()


def test_the_event_id_is_the_record_version_in_microseconds() -> None:
    from datetime import UTC, datetime

    from tasktrail.records import TaskRecord

    moment = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    fields = {name: None for name in TaskRecord.__dataclass_fields__}
    record = TaskRecord(**{**fields, "updated_at": moment})  # type: ignore[arg-type]
    assert notify.version(record) == int(moment.timestamp()) * 1_000_000 + 678901
