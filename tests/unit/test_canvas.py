"""Canvases without a worker: the chord join's counter on the real database, the chain
steps a first step's message carries, and what a group or chain adds up to."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

import tasktrail
from tasktrail import access, store
from tasktrail.celery import canvas as celery_canvas
from tasktrail.store import groups

pytestmark = pytest.mark.django_db(transaction=True)


def record(task_id: str, state: str, **values: Any) -> None:
    store.record(store.event(task_id, state, 1, timezone.now(), **values))


def test_the_join_counts_each_header_task_once_and_knows_the_last() -> None:
    now = timezone.now()
    groups.chord_applied("g1", "cb1", now, now + timedelta(days=1))
    # Header tasks may return before Celery says the size (it says it just before
    # sending the last one).
    assert groups.chord_part("g1", "h1", now) == (1, None)
    groups.chord_size("g1", 3, now)
    assert groups.chord_part("g1", "h2", now) == (2, 3)
    groups.chord_added("g1", now)
    assert groups.chord_part("g1", "h3", now) == (3, 4)
    assert groups.chord_part("g1", "h4", now) == (4, 4)
    # A header task run again (redelivered, replayed) adds nothing and sends nothing.
    assert groups.chord_part("g1", "h4", now) == (4, None)
    assert groups.chord_part("g1", "h1", now) == (4, None)
    join = groups.join("g1")
    assert join is not None and (join.callback_id, join.total, join.done) == ("cb1", 4, 4)
    # Applying the frozen chord again starts a new run under the same id, whose header
    # tasks (the same frozen ids) count again.
    groups.chord_applied("g1", "cb2", now, None)
    assert groups.chord_part("g1", "h1", now) == (1, None)


def test_a_header_task_delivered_again_cannot_complete_the_count_early() -> None:
    now = timezone.now()
    groups.chord_applied("g3", "cb", now, None)
    groups.chord_size("g3", 3, now)
    assert groups.chord_part("g3", "a", now) == (1, 3)
    # "a" again (its worker was lost after it counted): without the member rows this
    # made 2, and "b" then made 3 and sent the callback before "c" had returned.
    assert groups.chord_part("g3", "a", now) == (1, None)
    assert groups.chord_part("g3", "b", now) == (2, 3)
    assert groups.chord_part("g3", "c", now) == (3, 3)
    # Not even a different chord's join: a member is counted per (group, task).
    groups.chord_applied("g4", "cb", now, None)
    assert groups.chord_part("g4", "a", now) == (1, None)


def _concurrently(parts: list[tuple[str, str]], threads: int = 8) -> list[tuple[int, int | None]]:
    """``chord_part`` for each ``(group, task)``, from ``threads`` threads at once."""
    seen: list[tuple[int, int | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(mine: list[tuple[str, str]]) -> None:
        try:
            start.wait()
            for group_id, task_id in mine:
                counted = groups.chord_part(group_id, task_id, timezone.now())
                with lock:
                    seen.append(counted)
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(parts[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return seen


def _needs_connections() -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:"):
        pytest.skip("an in-memory SQLite database is one connection")


def test_concurrent_header_tasks_see_distinct_counts() -> None:
    _needs_connections()
    now = timezone.now()
    groups.chord_applied("g2", "cb", now, None)
    groups.chord_size("g2", 40, now)
    seen = _concurrently([("g2", f"t{i}") for i in range(40)])
    # Every count from 1 to 40 handed out exactly once: one task sees the last.
    assert sorted(done for done, _ in seen) == list(range(1, 41))
    assert [done for done, total in seen if total is not None and done == total] == [40]


def test_concurrent_deliveries_of_one_header_task_count_it_once() -> None:
    _needs_connections()
    now = timezone.now()
    groups.chord_applied("g5", "cb", now, None)
    groups.chord_size("g5", 5, now)
    # Each of 5 header tasks delivered 4 times, the deliveries racing each other.
    seen = _concurrently([("g5", f"t{i % 5}") for i in range(20)])
    counted = sorted(done for done, total in seen if total is not None)
    assert counted == [1, 2, 3, 4, 5]
    assert sum(1 for done, total in seen if done == total) == 1
    join = groups.join("g5")
    assert join is not None and join.done == 5


def _embed(*steps: tuple[str, str]) -> list[Any]:
    chain = [{"task": name, "options": {"task_id": task_id}} for task_id, name in steps]
    return [[], {}, {"chain": list(reversed(chain))}]


def test_a_first_steps_message_names_every_step_in_order() -> None:
    headers = {"id": "s1", "root_id": "s1", "task": "app.a"}
    body = _embed(("s2", "app.b"), ("s3", "app.c"))
    assert celery_canvas.steps(headers, body) == [("s1", "app.a"), ("s2", "app.b"), ("s3", "app.c")]
    # A later step's message (its root is the first step) and a plain task carry none.
    assert celery_canvas.steps({"id": "s2", "root_id": "s1"}, _embed(("s3", "app.c"))) == []
    assert celery_canvas.steps({"id": "t", "root_id": "t"}, [[], {}, {"chain": None}]) == []
    assert celery_canvas.steps({"id": "t"}, "not a body") == []


def test_a_group_step_is_named_by_its_kind() -> None:
    body = [[], {}, {"chain": [{"subtask_type": "chord", "options": {"task_id": "g9"}}]}]
    assert celery_canvas.steps({"id": "s1", "task": "app.a"}, body) == [
        ("s1", "app.a"),
        ("g9", "chord"),
    ]


def test_a_group_of_ten_with_one_failure_adds_up() -> None:
    for i in range(10):
        record(f"m{i}", "FAILURE" if i == 3 else "SUCCESS", group_id="g10", result=str(i))
    record("m-running", "STARTED", group_id="g10b")
    store.sync()
    status = tasktrail.group("g10")
    assert (status.kind, status.total, status.done, status.failed) == ("group", 10, 10, 1)
    assert status.progress == "10 of 10 done, 1 failed"
    assert (status.state, status.result, status.percent) == ("FAILURE", None, 100.0)
    with pytest.raises(tasktrail.TaskNotFound):
        tasktrail.group("no-such-group")


def test_a_chain_shows_the_step_that_runs_now() -> None:
    now = timezone.now()
    groups.save_chain("c1", [("c1", "app.a"), ("c2", "app.b"), ("c3", "app.c")], now, None)
    record("c1", "SUCCESS", result="1")
    record("c2", "STARTED")
    store.sync()
    status = tasktrail.chain("c3")
    assert [s.task_id for s in status.steps] == ["c1", "c2", "c3"]
    assert [s.sent for s in status.steps] == [True, True, False]
    assert status.current is not None and status.current.task_id == "c2"
    assert (status.state, status.progress, status.ready) == ("STARTED", "1 of 3 steps done", False)


def test_a_canvas_is_seen_as_its_least_visible_task() -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    staff = User.objects.create_user("staff", is_staff=True)
    for task_id in ("a1", "a2"):
        record(task_id, "SUCCESS", group_id="ga", owner_id=alice.pk, sent_at=timezone.now(),
               result="7", show_result="yes")  # fmt: skip
    record("b1", "SUCCESS", group_id="gab", owner_id=alice.pk, sent_at=timezone.now())
    record("b2", "SUCCESS", group_id="gab", owner_id=bob.pk, sent_at=timezone.now())
    store.sync()
    level = access.canvas_level
    assert level(access.viewer(alice), groups.owners("ga")) is access.Level.VIEWER
    assert level(access.viewer(bob), groups.owners("ga")) is access.Level.NONE
    assert level(access.viewer(alice), groups.owners("gab")) is access.Level.NONE
    assert level(access.viewer(staff), groups.owners("gab")) is access.Level.STAFF
    assert level(access.viewer(staff), groups.owners("unknown")) is access.Level.NONE

    client = Client()
    client.force_login(bob)
    hidden = client.get("/tasktrail/groups/ga/status/")
    unknown = client.get("/tasktrail/groups/unknown/status/")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.content == unknown.content
    assert dict(hidden.headers) == dict(unknown.headers)
    client.force_login(alice)
    shown = client.get("/tasktrail/groups/ga/status/").json()
    assert (shown["progress"], shown["result"]) == ("2 of 2 done", [7, 7])
    # A member whose outcome its owner may not see hides the group's result too.
    record("a3", "SUCCESS", group_id="ga", owner_id=alice.pk, sent_at=timezone.now())
    store.sync()
    assert "result" not in client.get("/tasktrail/groups/ga/status/").json()


def test_chords_joins_and_chains_steps_expire_with_the_groups() -> None:
    from tasktrail import services
    from tasktrail.models import ChainStep, Chord, ChordMember

    now = timezone.now()
    past, future = now - timedelta(hours=1), now + timedelta(days=1)
    groups.chord_applied("old", "cb", now - timedelta(days=2), past)
    groups.chord_applied("new", "cb", now, future)
    for group_id in ("old", "new"):
        groups.chord_part(group_id, "h1", now)
        groups.chord_part(group_id, "h2", now)
    groups.save_chain("c-old", [("c-old", "a"), ("c-old-2", "b")], now, past)
    groups.save_chain("c-new", [("c-new", "a")], now, future)
    # A join's counted header tasks are part of it, not counted apart.
    assert services.cleanup(dry_run=True, now=now).groups == 3
    assert services.cleanup(now=now).groups == 3
    assert list(Chord.objects.values_list("group_id", flat=True)) == ["new"]
    assert list(ChainStep.objects.values_list("task_id", flat=True)) == ["c-new"]
    members = ChordMember.objects.order_by("task_id").values_list("group_id", "task_id")
    assert list(members) == [("new", "h1"), ("new", "h2")]
    # The kept chord's members still count once.
    assert groups.chord_part("new", "h1", now) == (2, None)


def test_a_group_counts_the_senders_own_buffered_members_at_once() -> None:
    # No sync: the sender's PENDING rows are still in its buffer, the first members'
    # outcomes (a fast worker's) are written; the group must not read "2 of 2 done".
    for n in range(20):
        group_id = f"own-g{n}"
        for i in range(2):
            record(f"{group_id}-{i}", "SUCCESS", group_id=group_id)
        store.sync()
        record(f"{group_id}-2", "PENDING", group_id=group_id)
        status = tasktrail.group(group_id)
        assert (status.total, status.done, status.ready) == (3, 2, False)
