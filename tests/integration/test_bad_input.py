"""Bad input reaches a real worker: each ends in a clear FAILURE, and the worker lives on.

Also the time limits, whose outcomes Celery reports in terse exceptions.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.result import AsyncResult
from django.conf import settings

import tasktrail
from tasktrail import store
from tests.testapp import tasks
from tests.testapp.celeryapp import app

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _worker(worker: Any) -> Iterator[None]:
    """Every test here needs the session's worker, and checks it survived."""
    yield
    assert app.control.ping(destination=[f"itest@{socket.gethostname()}"], timeout=2)
    assert tasks.add.delay(1, 1).get(timeout=20) == 2


def failure(task_id: str) -> tasktrail.TaskRecord:
    record = wait_for(task_id, lambda r: r.state == "FAILURE")
    assert record.error is not None and record.finished_at is not None
    return record


def test_an_exception_holding_no_json_value_fails_clearly() -> None:
    result = tasks.raises_unserialisable.delay()
    record = failure(result.id)
    assert record.error is not None
    assert record.error.type == "tests.testapp.tasks.HoldsAHandle"
    assert "lock" in record.error.message
    assert record.error.traceback and "raises_unserialisable" in record.error.traceback
    with pytest.raises(Exception, match="lock"):
        result.get(timeout=5)


def test_an_exception_that_cannot_describe_itself_fails_clearly() -> None:
    result = tasks.raises_unreadable.delay()
    record = failure(result.id)
    assert record.error is not None
    assert record.error.type == "tests.testapp.tasks.UnreadableError"
    assert "str() raised" in record.error.message
    assert AsyncResult(result.id).state == "FAILURE"


def test_an_unknown_task_name_fails_clearly() -> None:
    result = app.send_task("tests.testapp.tasks.no_such_task", (1,))
    record = failure(result.id)
    assert record.error is not None
    assert record.error.type == "celery.exceptions.NotRegistered"
    assert "unknown task name" in record.error.message
    assert "tests.testapp.tasks.no_such_task" in record.error.message
    assert record.name == "tests.testapp.tasks.no_such_task"


def publish_raw(body: bytes, content_type: str, task_id: str) -> None:
    """Publish what a broken or foreign producer might: real headers, bad body."""
    headers, properties, _, _ = app.amqp.as_task_v2(task_id, "tests.testapp.tasks.add", (1, 2))
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            routing_key=settings.CELERY_TASK_DEFAULT_QUEUE,
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers,
            **properties,
        )


@pytest.mark.parametrize(
    ("body", "content_type", "expected_type", "reason"),
    [
        (b"{not json", "application/json", "DecodeError", "body could not be decoded"),
        (b'"not [args, kwargs, embed]"', "application/json", "InvalidTaskError", "not a valid"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "ContentDisallowed", "pickle"),
    ],
)
def test_a_malformed_message_fails_with_the_reason(
    body: bytes, content_type: str, expected_type: str, reason: str
) -> None:
    task_id = f"malformed-{uuid.uuid4()}"
    publish_raw(body, content_type, task_id)
    record = failure(task_id)
    assert record.error is not None
    assert record.error.type.endswith(expected_type)
    assert reason in record.error.message
    assert record.name == "tests.testapp.tasks.add"


def test_hard_time_limit_is_recorded_clearly() -> None:
    result = tasks.over_hard_limit.delay()
    record = failure(result.id)
    assert record.error is not None
    assert record.error.type == "billiard.exceptions.TimeLimitExceeded"
    assert record.error.message == (
        "hard time limit (1 s) exceeded: the worker killed the process running the task"
    )


def test_soft_time_limit_is_recorded_clearly() -> None:
    result = tasks.over_soft_limit.delay()
    record = failure(result.id)
    assert record.error is not None
    assert record.error.type == "billiard.exceptions.SoftTimeLimitExceeded"
    assert record.error.message.startswith("soft time limit (0.5 s) exceeded")
    assert record.error.traceback and "over_soft_limit" in record.error.traceback


def test_poison_values_among_clean_tasks_lose_nothing() -> None:
    """A value the database cannot hold (NUL, a type name longer than its column, a
    malformed state) is recorded made storable, and every clean task sent around it,
    by this process and by the worker, is recorded too."""
    clean, poisons = [], []
    for i in range(100):
        clean.append(tasks.add.delay(i, i))
        if i % 20 == 0:
            poisons += [
                tasks.add.delay("a\x00", "b"),
                tasks.boom.delay("bad\x00value"),
                tasks.nul_progress.delay(),
                tasks.long_named.delay(),
                tasks.raises_long_type.delay(),
                tasks.bad_state.delay(),
            ]
    # This process's buffer (the sender's PENDING rows) is not stuck behind the poison.
    assert store.sync(), "the sender's buffer is stuck behind a poison row"
    assert [r.get(timeout=60) for r in clean] == [2 * i for i in range(100)]
    records = [tasktrail.get(r.id) for r in clean]
    # sent_at is taken before the message is published: never after the task started.
    late = [r.id for r in records if not (r.sent_at and r.started_at and r.sent_at <= r.started_at)]
    assert not late, f"sent after they started: {late}"
    done = {r.id: wait_for(r.id, lambda rec: rec.ready, timeout=60) for r in poisons}
    for record in done.values():
        assert record.sent_at is not None, f"{record.id}: the sender's PENDING was lost"
    by_name: dict[str, list[tasktrail.TaskRecord]] = {}
    for record in done.values():
        by_name.setdefault(record.name.rsplit(".", 1)[-1], []).append(record)
    assert {r.result for r in by_name["add"]} == {"a\ufffdb"}
    assert {r.args[0] for r in by_name["add"]} == {"a\ufffd"}
    assert {(r.state, r.error.message) for r in by_name["boom"] if r.error} == {
        ("FAILURE", "bad\ufffdvalue")
    }
    for record in by_name["nul_progress"]:
        assert record.state == "SUCCESS" and record.progress is not None
        assert (record.progress.message, record.progress.meta) == (
            "half\ufffdway",
            {"note": "a\ufffdb"},
        )
    long_names = [r for n, rs in by_name.items() if n.startswith("long_name") for r in rs]
    assert len(long_names) == 5 and all(
        len(r.name) == 255 and r.name.endswith("…") for r in long_names
    )
    for record in by_name["raises_long_type"]:
        assert record.error is not None and len(record.error.type) == 255
        assert "too long a type" in record.error.message
    for record in by_name["bad_state"]:
        assert record.state == "FAILURE" and record.error is not None
        assert record.error.type == "tasktrail.states.InvalidState"


def test_huge_progress_and_error_texts_are_capped_on_every_surface() -> None:
    """A task sending 5 MB of progress message, 5 MB of meta and a 5 MB error message:
    each is stored capped with a marker, so a status poll stays small."""
    from django.test import Client

    from tests.conftest import make_user

    result = tasks.huge_texts.delay(5_000_000)
    record = failure(result.id)
    assert record.error is not None and len(record.error.message.encode()) <= 16 * 1024
    assert "over MAX_MESSAGE_BYTES" in record.error.message
    assert record.progress is not None
    assert len(record.progress.message.encode()) <= 16 * 1024
    assert "over MAX_META_BYTES" in record.progress.meta["tasktrail_omitted"]
    assert len(record.error.traceback or "") <= 64 * 1024
    staff = make_user("caps-staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    status = client.get(f"/tasktrail/tasks/{result.id}/status/")
    assert status.status_code == 200 and len(status.content) < 200_000
