"""Groups, chains and chords as one unit, with a real worker: Celery's own results
(``GroupResult``, ``chord``, ``chain``), tasktrail's native chord join, and every
surface that shows a canvas (service, JSON, event stream, dashboard page)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import chain, chord, group
from celery.result import AsyncResult, GroupResult
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

import tasktrail
from tasktrail.models import Task
from tasktrail.store import groups
from tests.integration.conftest import unique_queue
from tests.sse import events
from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _worker(worker: Any) -> None:
    """Every test here needs the worker process."""


def until[T](read: Callable[[], T], done: Callable[[T], bool], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except tasktrail.TaskNotFound:
            value = None  # type: ignore[assignment]
        if value is not None and done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never matched; last: {value}")
        time.sleep(0.05)


def group_of_ten() -> GroupResult:
    """10 members, the fourth (x = 3) fails."""
    return group(tasks.fails_on.s(i, 3) for i in range(10)).apply_async()


def chord_of_five() -> AsyncResult:
    return chord(tasks.add.s(i, i) for i in range(5))(tasks.total.s())


def chain_of_three() -> AsyncResult:
    return chain(tasks.add.s(1, 1), tasks.add.s(2), tasks.add.s(3)).apply_async()


def test_group_of_ten_with_one_failure() -> None:
    result = group_of_ten()
    status = until(lambda: tasktrail.group(result.id), lambda s: s.ready)
    assert (status.kind, status.total, status.done, status.failed) == ("group", 10, 10, 1)
    assert status.progress == "10 of 10 done, 1 failed"
    assert dict(status.counts) == {"SUCCESS": 9, "FAILURE": 1}
    assert status.state == "FAILURE" and status.result is None
    assert {m.id for m in status.members} == {r.id for r in result.results}
    failed = [m for m in status.members if m.state == "FAILURE"]
    assert [m.args for m in failed] == [[3, 3]]
    assert status.callback is None and status.callback_id == ""


def test_group_apply_async_get_and_saved_order() -> None:
    result = group(tasks.add.s(i, 1) for i in range(10)).apply_async()
    assert result.get(timeout=20) == [i + 1 for i in range(10)]
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None
    assert [r.id for r in restored.results] == [r.id for r in result.results]
    status = tasktrail.group(result.id)
    # A saved group lists its members in the group's order, so its result is Celery's.
    assert [m.id for m in status.members] == [r.id for r in result.results]
    assert status.state == "SUCCESS" and status.result == [i + 1 for i in range(10)]
    assert status.progress == "10 of 10 done"


def test_chord_of_five_joins_natively() -> None:
    result = chord_of_five()
    assert result.get(timeout=20) == 20
    header = result.parent
    assert header is not None
    status = until(lambda: tasktrail.group(header.id), lambda s: s.ready)
    assert (status.kind, status.total, status.done, status.failed) == ("chord", 5, 5, 0)
    assert status.callback_id == result.id
    assert status.callback is not None and status.callback.state == "SUCCESS"
    assert status.result == 20 and status.state == "SUCCESS"
    assert result.id not in {m.id for m in status.members}
    # The callback's own record names the header's group, so either id finds the chord.
    assert tasktrail.get(result.id).group_id == header.id
    # Sent by the last header task, not by Celery's chord_unlock polling.
    assert not Task.objects.filter(name="celery.chord_unlock").exists()


def test_chord_header_failure_fails_the_callback() -> None:
    result = chord(tasks.fails_on.s(i, 2) for i in range(5))(tasks.total.s())
    # As with Celery's Redis backend: the header task's own error, not the ChordError.
    with pytest.raises(ValueError, match="2 is the bad one"):
        result.get(timeout=20)
    header = result.parent
    assert header is not None
    status = until(lambda: tasktrail.group(header.id), lambda s: s.ready)
    assert (status.done, status.failed, status.state) == (5, 1, "FAILURE")
    assert status.callback is not None and status.callback.state == "FAILURE"
    assert status.callback.error is not None and status.callback.error.type.endswith("ChordError")
    failed = next(m for m in status.members if m.state == "FAILURE")
    assert status.callback.error.message.startswith(f"Dependency {failed.id} raised ValueError")


def test_a_replayed_header_task_neither_completes_the_chord_early_nor_again() -> None:
    """A header task's message sent again (same id, group and chord) counts once.
    Counted twice, it completed the count while the slow header task still ran: the
    callback's join waited ``result_chord_join_timeout`` (3 s) for it and the callback
    failed with ChordError."""
    fast = str(uuid.uuid4())
    header = [tasks.add.s(1, 1).set(task_id=fast), tasks.reports_progress.s(30, 0.2)]
    result = chord(header)(tasks.total.s())
    header_id = result.parent.id  # type: ignore[union-attr]
    until(lambda: tasktrail.get(fast), lambda r: r.state == "SUCCESS")
    callback = tasks.total.s().set(task_id=result.id)
    tasks.add.apply_async((1, 1), task_id=fast, group_id=header_id, chord=callback)
    # The slow task holds one of the worker's two processes for 6 s; the other runs the
    # replay, then this: once it answered, the replay has returned.
    assert tasks.add.delay(0, 0).get(timeout=10) == 0
    join = groups.join(header_id)
    assert join is not None and (join.done, join.total) == (1, 2)
    assert result.get(timeout=30) == 32
    join = groups.join(header_id)
    assert join is not None and join.done == 2
    # Replayed once the chord is complete: it counts nothing and sends nothing.
    tasks.add.apply_async((1, 1), task_id=fast, group_id=header_id, chord=callback)
    assert tasks.add.delay(0, 0).get(timeout=10) == 0
    join = groups.join(header_id)
    assert join is not None and join.done == 2


def test_a_header_task_delivered_again_after_its_worker_was_lost_counts_once(
    start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    """``acks_late``: the header task returned and counted, then its worker died before
    acknowledging the message, so the broker delivered it again and it ran again."""
    short = {"TT_VISIBILITY_TIMEOUT": "5"}
    other = unique_queue("chord-other")
    watcher = start_worker("chord-watcher", other, short, concurrency=2)
    queue = unique_queue("chord-victim")
    victim = start_worker("chord-victim", queue, short)
    runs, release = tmp_path / "runs", tmp_path / "release"
    header = [
        tasks.returns_then_hangs_once.s(1, str(runs)).set(queue=queue),
        # Held until the test releases it: the chord cannot be complete before.
        tasks.returns_once_released.s(str(release), 2).set(queue=other),
    ]
    result = chord(header)(tasks.total.s().set(queue=other))
    header_id = result.parent.id  # type: ignore[union-attr]

    def returned() -> int:
        return runs.read_text().count("returned") if runs.exists() else 0

    until(returned, lambda n: n == 1)
    victim.kill()
    # Redis hands the unacknowledged message out again after the visibility timeout,
    # RabbitMQ when the dead consumer's connection closes.
    app.control.add_consumer(queue, destination=[watcher.hostname], reply=True)
    until(returned, lambda n: n == 2, timeout=60)
    # The second run has returned: counted again, it would have completed the join (and
    # the callback's join would have failed waiting for the held task).
    join = groups.join(header_id)
    assert join is not None and (join.done, join.total) == (1, 2)
    release.touch()
    assert result.get(timeout=30) == 3
    join = groups.join(header_id)
    assert join is not None and join.done == 2


def test_chain_of_three_shows_its_steps_in_order() -> None:
    result = chain(tasks.sleepy.s(0.5), tasks.add.si(2, 3), tasks.add.s(4)).apply_async()
    # At once, from the last step's id, before Celery has sent it.
    status = tasktrail.chain(result.id)
    assert [s.task_id for s in status.steps] == [
        result.parent.parent.id,
        result.parent.id,
        result.id,
    ]  # type: ignore[union-attr]
    assert [s.name.rsplit(".", 1)[-1] for s in status.steps] == ["sleepy", "add", "add"]
    assert not status.steps[2].sent and status.current is not None
    assert status.current.position == 0
    assert result.get(timeout=20) == 9
    done = until(lambda: tasktrail.chain(result.id), lambda s: s.ready)
    assert (done.state, done.progress, done.result, done.current) == (
        "SUCCESS",
        "3 of 3 steps done",
        9,
        None,
    )
    assert tasktrail.chain(result.parent.parent.id).id == done.id  # type: ignore[union-attr]


def test_chain_step_failure_ends_the_chain() -> None:
    result = chain(tasks.add.s(1, 2), tasks.fails_on.s(3), tasks.add.s(1)).apply_async()
    with pytest.raises(ValueError, match="3 is the bad one"):
        result.get(timeout=20)
    status = until(lambda: tasktrail.chain(result.id), lambda s: s.ready)
    assert status.state == "FAILURE" and status.failed >= 1
    assert [s.state for s in status.steps][:2] == ["SUCCESS", "FAILURE"]


# -- the surfaces: JSON, event stream, dashboard page, with the task's access rule ----


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("canvas-owner", password="pw")


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("canvas-staff", password="pw", is_staff=True)


def _json(client: Client, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return dict(response.json())


async def _stream(url: str, user: User) -> list[dict[str, Any]]:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(url)
    assert response.status_code == 200
    return [e["data"] async for e in events(response.streaming_content) if "data" in e]


def follow(url: str, user: User) -> list[dict[str, Any]]:
    return asyncio.run(asyncio.wait_for(_stream(url, user), 30))


def test_group_of_ten_on_every_surface(owner: User, staff: User) -> None:
    with tasktrail.owned_by(owner):
        result = group_of_ten()
    received = follow(f"/tasktrail/groups/{result.id}/events/", owner)
    last = received[-1]
    assert last["ready"] and last["progress"] == "10 of 10 done, 1 failed"
    assert (last["kind"], last["total"], last["done"], last["failed"]) == ("group", 10, 10, 1)
    assert last["counts"] == {"SUCCESS": 9, "FAILURE": 1}
    # Each event is a newer version; the stream closed itself once the group was done.
    versions = [e["version"] for e in received]
    assert versions == sorted(set(versions))

    client = Client()
    client.force_login(owner)
    shown = _json(client, f"/tasktrail/groups/{result.id}/status/")
    assert shown["progress"] == "10 of 10 done, 1 failed" and shown["state"] == "FAILURE"
    failed = [m for m in shown["members"] if m["state"] == "FAILURE"]
    assert [m["error"]["message"] for m in failed] == ["3 is the bad one"]
    # What an owner sees of a member is what they see of the task itself.
    assert "args" not in failed[0] and "traceback" not in failed[0]["error"]

    # The dashboard page: operators only, as every dashboard page.
    assert client.get(f"/tasktrail/groups/{result.id}/detail/").status_code == 404
    client.force_login(staff)
    page = client.get(f"/tasktrail/groups/{result.id}/detail/").content.decode()
    assert "Group of 10 tasks" in page and "10 of 10 done, 1 failed" in page
    assert 'data-count="FAILURE">1<' in page and 'data-count="SUCCESS">9<' in page
    member = result.results[0].id
    detail = client.get(f"/tasktrail/tasks/{member}/detail/").content.decode()
    assert f'href="/tasktrail/groups/{result.id}/detail/"' in detail


def test_chord_of_five_on_every_surface(owner: User, staff: User) -> None:
    with tasktrail.owned_by(owner):
        result = chord_of_five()
    header = result.parent
    assert header is not None
    received = follow(f"/tasktrail/groups/{header.id}/events/", owner)
    last = received[-1]
    assert (last["kind"], last["progress"], last["state"], last["result"]) == (
        "chord",
        "5 of 5 done",
        "SUCCESS",
        20,
    )
    assert last["callback_id"] == result.id and last["callback"]["state"] == "SUCCESS"
    assert len(last["members"]) == 5

    client = Client()
    client.force_login(owner)
    assert _json(client, f"/tasktrail/groups/{header.id}/status/")["result"] == 20
    client.force_login(staff)
    page = client.get(f"/tasktrail/groups/{header.id}/detail/").content.decode()
    assert "Chord of 5 tasks" in page and "5 of 5 done" in page
    assert f'href="/tasktrail/tasks/{result.id}/detail/"' in page  # the callback


def test_chain_of_three_on_every_surface(owner: User, staff: User) -> None:
    with tasktrail.owned_by(owner):
        result = chain_of_three()
    received = follow(f"/tasktrail/chains/{result.id}/events/", owner)
    first, last = received[0], received[-1]
    assert [s["id"] for s in first["steps"]][-1] == result.id
    assert (last["progress"], last["state"], last["result"], last["current"]) == (
        "3 of 3 steps done",
        "SUCCESS",
        7,
        None,
    )
    assert [s["task"]["result"] for s in last["steps"]] == [2, 4, 7]
    # While it ran, the stream named the step running now.
    assert all(e["current"] is not None for e in received[:-1])

    client = Client()
    client.force_login(staff)
    page = client.get(f"/tasktrail/chains/{result.id}/detail/").content.decode()
    assert "Chain of 3 steps" in page and "3 of 3 steps done" in page
    detail = client.get(f"/tasktrail/tasks/{result.id}/detail/").content.decode()
    assert f'href="/tasktrail/chains/{result.id}/detail/"' in detail


def test_hidden_and_unknown_canvases_look_the_same(owner: User) -> None:
    other = User.objects.create_user("someone-else")
    with tasktrail.owned_by(owner):
        grouped = group(tasks.add.s(i, i) for i in range(3)).apply_async()
        chained = chain_of_three()
    grouped.get(timeout=20)
    chained.get(timeout=20)
    client = Client()
    client.force_login(other)
    answers = [
        client.get(url)
        for url in (
            f"/tasktrail/groups/{grouped.id}/status/",
            "/tasktrail/groups/no-such-group/status/",
            f"/tasktrail/chains/{chained.id}/status/",
            "/tasktrail/chains/no-such-chain/status/",
            f"/tasktrail/groups/{grouped.id}/detail/",
            "/tasktrail/groups/no-such-group/detail/",
        )
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert answers[0].content == answers[1].content == answers[2].content == answers[3].content
    assert answers[4].content == answers[5].content
    # A group with one task of someone else's is hidden from its owner too.
    with tasktrail.owned_by(other):
        tasks.add.apply_async((1, 1), group_id=grouped.id).get(timeout=20)
    client.force_login(owner)
    assert client.get(f"/tasktrail/groups/{grouped.id}/status/").status_code == 404
