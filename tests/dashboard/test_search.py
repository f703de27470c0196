"""The operators' search on every list, the live list's batch, the header, queue wait.
Real rows through the write path; SQLite and PostgreSQL (django_db)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tasktrail import states, store
from tasktrail.models import TaskName
from tasktrail.store import names, overview, queries

from .conftest import client_for, recorded

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-task-id="([^"]+)"', html)


@pytest.fixture
def fleet(users: dict[str, User]) -> dict[str, str]:
    """Tasks of several names, queues, workers and owners, a minute apart."""
    now = timezone.now()
    rows = {
        "s1": ("demo.tasks.slow_task", "celery", "SUCCESS", "w1@alpha", {}),
        "s2": ("demo.tasks.slow_task", "celery", "FAILURE", "w2@beta", {}),
        "r1": ("app.reports.build_weekly", "reports", "SUCCESS", "w1@alpha", {}),
        "r2": ("app.reports.build_daily", "reports", "FAILURE", "w2@beta", {}),
        "m1": ("app.mail.send_email", "mail", "STARTED", "w1@alpha", {}),
    }
    for i, (task_id, (name, queue, state, worker, extra)) in enumerate(rows.items()):
        values: dict[str, Any] = {"name": name, "queue": queue, "worker": worker, **extra}
        if state == states.FAILURE:
            values.update(error_type="SMTPError", error_message=f"mailbox {task_id} is full")
        if task_id == "r1":
            values.update(owner_id=users["plain"].pk, args='["quarterly-secret"]')
        recorded(task_id, state, now - timedelta(minutes=i), **values)
    return {k: v[0] for k, v in rows.items()}


def test_the_write_path_keeps_the_known_names(fleet: dict[str, str]) -> None:
    pairs = set(TaskName.objects.values_list("name", "queue"))
    assert ("demo.tasks.slow_task", "celery") in pairs
    assert ("app.reports.build_daily", "reports") in pairs
    assert len(pairs) == 4  # one row per (name, queue), however many tasks
    assert names.matching("name", "REPORTS.") == [
        "app.reports.build_daily",
        "app.reports.build_weekly",
    ]
    assert names.matching("name", "nothing-like-it") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=slow_task", ["s1", "s2"]),
        ("name=reports.", ["r1", "r2"]),
        ("name=Reports.Build_W", ["r1"]),
        ("name=demo.tasks.slow_task", ["s1", "s2"]),
        ("name=no_such_task", []),
        ("state=FAILURE", ["s2", "r2"]),
        ("state=failure&name=reports", ["r2"]),
        ("queue=report", ["r1", "r2"]),
        ("worker=beta", ["s2", "r2"]),
        ("owner=plain", ["r1"]),
        ("error=R2+IS+full", ["r2"]),
        ("error=SMTP&name=slow", ["s2"]),
        ("arguments=quarterly", ["r1"]),
        ("since=150s", ["s1", "s2", "r1"]),
        ("since=4m&until=90s", ["r1", "r2"]),
    ],
)
def test_every_filter_an_operator_types(
    users: dict[str, User], fleet: dict[str, str], query: str, expected: list[str]
) -> None:
    response = client_for(users["staff"]).get(f"/tasktrail/tasks/?{query}")
    assert response.status_code == 200
    assert _ids(response.content.decode()) == expected


def test_state_is_a_list_of_states_and_the_fields_follow_what_one_may_see(
    users: dict[str, User], fleet: dict[str, str]
) -> None:
    staff = client_for(users["staff"]).get("/tasktrail/tasks/").content.decode()
    select = staff.split('<select name="state"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]*)"', select) == ["", *states.LISTED_STATES]
    for field in ("name", "queue", "worker", "owner", "since", "until", "error", "arguments"):
        assert f'name="{field}"' in staff, field
    viewer = client_for(users["viewer"]).get("/tasktrail/tasks/?arguments=quarterly&worker=beta")
    html = viewer.content.decode()
    for field in ("worker", "owner", "arguments"):
        assert f'name="{field}"' not in html, field
    # A field the viewer does not have is no filter: nothing is told about arguments.
    assert _ids(html) == ["s1", "s2", "r1", "r2", "m1"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("state=NOPE", "invalid task state"),
        ("since=yesterday", "bad date"),
        ("until=9999999d", "reaches back past"),
        ("owner=nobody", "unknown user"),
        ("name=" + "x" * 201, "at most 200"),
    ],
)
def test_bad_search_input_is_400_with_the_reason(
    users: dict[str, User], fleet: dict[str, str], query: str, reason: str
) -> None:
    for path in ("/tasktrail/tasks/", "/tasktrail/"):
        response = client_for(users["staff"]).get(f"{path}?{query}")
        assert response.status_code == 400, path
        html = response.content.decode()
        assert reason in html, path
        assert _ids(html) == [], path
    stream = client_for(users["staff"]).get(f"/tasktrail/live/list/?once=1&{query}")
    assert stream.status_code == 400 and reason in str(stream.json()["fields"])


def test_the_overview_lists_take_the_search(users: dict[str, User]) -> None:
    recorded("run-a", "STARTED", name="app.reports.build", worker="w1@alpha")
    recorded("run-b", "STARTED", name="app.mail.send", worker="w2@beta")
    recorded("lost-a", "LOST", name="app.reports.build")
    client = client_for(users["staff"])
    html = client.get("/tasktrail/?name=reports").content.decode()
    running = html.split('id="tt-running"')[1].split("</table>")[0]
    assert _ids(running) == ["run-a"]
    assert _ids(html.split('id="tt-lost"')[1].split("</table>")[0]) == ["lost-a"]
    assert '<details class="tt-overview-search" open>' in html
    everything = client.get("/tasktrail/").content.decode()
    assert set(_ids(everything.split('id="tt-running"')[1].split("</table>")[0])) == {
        "run-a",
        "run-b",
    }


def test_state_badges_carry_their_state_in_every_table(
    users: dict[str, User], fleet: dict[str, str]
) -> None:
    client = client_for(users["staff"])
    for path in ("/tasktrail/tasks/", "/tasktrail/"):
        html = client.get(path).content.decode()
        badges = re.findall(r'<span class="tt-state"[^>]*>', html)
        assert badges, path
        assert all("data-state=" in badge for badge in badges), (path, badges)
    listed = client.get("/tasktrail/tasks/").content.decode()
    assert '<span class="tt-state" data-field="state" data-state="FAILURE">' in listed


def test_the_header_names_the_user_and_the_ways_out(users: dict[str, User]) -> None:
    staff = client_for(users["staff"]).get("/tasktrail/").content.decode()
    header = staff.split("<header")[1].split("</header>")[0]
    assert '<span class="tt-username" data-user>staff</span>' in header
    assert 'href="/admin/"' in header and 'href="/"' in header
    assert re.search(r'<form method="post" action="/admin/logout/"', header)
    assert "csrfmiddlewaretoken" in header
    viewer = client_for(users["viewer"]).get("/tasktrail/").content.decode()
    header = viewer.split("<header")[1].split("</header>")[0]
    assert "data-user>viewer<" in header and 'href="/admin/"' not in header


def test_the_live_batch_brings_what_is_new_to_the_list_with_its_search(
    users: dict[str, User], fleet: dict[str, str]
) -> None:
    client = client_for(users["staff"])
    page = client.get("/tasktrail/tasks/?name=reports").content.decode()
    url = page.split('data-stream-url="')[1].split('"')[0].replace("&amp;", "&")
    assert "list=tasks" in url and "name=reports" in url and "from=" in url
    assert client.get(url + "&once=1").json()["tasks"] == []
    recorded("r3", "PENDING", name="app.reports.build_weekly", queue="reports")
    recorded("s3", "PENDING", name="demo.tasks.slow_task", queue="celery")
    batch = client.get(url + "&once=1").json()
    assert [t["id"] for t in batch["tasks"]] == ["r3"]
    row = batch["tasks"][0]
    assert row["name"] == "app.reports.build_weekly" and row["url"] == "/tasktrail/tasks/r3/detail/"
    assert "args" not in row and "result" not in row
    # From its last cursor, nothing more until something changes.
    again = client.get(url.split("&from=")[0] + "&once=1&from=" + batch["cursor"]).json()
    assert again["tasks"] == []


def test_the_running_stream_sends_running_tasks_and_the_counters(
    users: dict[str, User],
) -> None:
    client = client_for(users["staff"])
    html = client.get("/tasktrail/").content.decode()
    url = html.split('data-stream-url="')[1].split('"')[0].replace("&amp;", "&")
    assert "list=running" in url and "counts=1" in url
    recorded("go", "STARTED", name="app.go")
    recorded("done", "SUCCESS", name="app.done")
    batch = client.get(url + "&once=1").json()
    assert [t["id"] for t in batch.get("tasks", [])] == ["go"], batch
    hour = next(c for c in batch["counts"] if c["window"] == "hour")
    assert hour["by_state"] == {"STARTED": 1, "SUCCESS": 1} and hour["total"] == 2


def test_the_live_batch_applies_the_pages_access_rule(
    users: dict[str, User], fleet: dict[str, str]
) -> None:
    since = (NOW - timedelta(hours=1)).isoformat()
    query = {"once": "1", "from": f"{since},"}
    assert client_for(users["plain"]).get("/tasktrail/live/list/", query).status_code == 404
    assert client_for(None).get("/tasktrail/live/list/", query).status_code == 404
    viewer = client_for(users["viewer"]).get("/tasktrail/live/list/", query).json()
    assert {t["id"] for t in viewer["tasks"]} == set(fleet)
    assert all("worker" not in t for t in viewer["tasks"])
    bad = client_for(users["staff"]).get("/tasktrail/live/list/", {**query, "list": "x"})
    assert bad.status_code == 400


def test_queue_wait_of_a_retried_task_leaves_out_its_countdown() -> None:
    t0 = timezone.now() - timedelta(minutes=5)
    at = {k: t0 + timedelta(seconds=s) for k, s in {"sent": 0, "s1": 0.2, "retry": 0.3}.items()}
    due = t0 + timedelta(seconds=3.3)  # a 3 s countdown
    task = {"name": "app.send_email", "queue": "mail"}
    store.record(store.event("mail-1", "PENDING", 1, at["sent"], sent_at=at["sent"], **task))
    store.record(store.event("mail-1", "STARTED", 1, at["s1"], started_at=at["s1"]), {"pid": 1})
    store.record(store.event("mail-1", "RETRY", 1, at["retry"], next_retry_at=due))
    started = due + timedelta(seconds=0.05)
    store.record(
        store.event("mail-1", "STARTED", 2, started, started_at=started),
        {"pid": 1, "due": due.isoformat()},
    )
    done = started + timedelta(seconds=0.01)
    store.record(store.event("mail-1", "SUCCESS", 2, done, finished_at=done))
    # A first attempt counts from its sending.
    sent = t0 + timedelta(seconds=1)
    store.record(store.event("plain-1", "PENDING", 1, sent, sent_at=sent, **task))
    ran = sent + timedelta(seconds=0.5)
    store.record(store.event("plain-1", "STARTED", 1, ran, started_at=ran))
    store.record(store.event("plain-1", "SUCCESS", 1, ran, finished_at=ran))
    store.flush()
    (timing,) = overview.timings(timezone.now())
    assert timing.name == "app.send_email" and timing.count == 2
    assert timing.wait["p50"] == pytest.approx(0.05, abs=0.001)
    assert timing.wait["p99"] == pytest.approx(0.5, abs=0.001)


def test_a_retry_without_countdown_waits_from_when_it_was_retried() -> None:
    t0 = timezone.now() - timedelta(minutes=5)
    store.record(store.event("r-1", "PENDING", 1, t0, sent_at=t0, name="app.flaky"))
    retried = t0 + timedelta(seconds=10)
    store.record(store.event("r-1", "RETRY", 1, retried))
    started = retried + timedelta(seconds=0.25)
    store.record(store.event("r-1", "STARTED", 2, started, started_at=started))
    store.record(store.event("r-1", "SUCCESS", 2, started, finished_at=started))
    store.flush()
    (timing,) = overview.timings(timezone.now())
    assert timing.wait["p50"] == pytest.approx(0.25, abs=0.001)


def test_newer_lists_what_changed_after_a_cursor_newest_first() -> None:
    recorded("a", "PENDING", NOW - timedelta(seconds=3), name="app.a")
    recorded("b", "PENDING", NOW - timedelta(seconds=2), name="app.b")
    recorded("c", "STARTED", NOW - timedelta(seconds=1), name="app.a")
    cursor = (NOW - timedelta(seconds=3), "a")
    found = queries.newer(queries.TaskFilter(name="app."), cursor, 10)
    assert [r.id for r in found] == ["c", "b"]
    assert [r.id for r in queries.newer(queries.TaskFilter(name="p.A"), cursor, 10)] == ["c"]


def test_the_stream_sends_a_matching_task_recorded_after_it_opened(
    users: dict[str, User],
) -> None:
    """Over ASGI, as a browser's EventSource reads it: one stream, the page's search, and
    a task name no task had when the stream opened."""
    import asyncio

    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    from tests.sse import events

    since = f"{timezone.now().isoformat()},"

    async def write() -> None:
        await asyncio.sleep(0.5)
        await sync_to_async(recorded)("other-1", "PENDING", name="app.mail.send")
        await sync_to_async(recorded)("wanted-1", "PENDING", name="app.reports.build")

    async def read() -> tuple[list[str], str]:
        client = AsyncClient()
        await client.aforce_login(users["staff"])
        query = {"list": "tasks", "name": "REPORTS.", "from": since}
        response = await client.get("/tasktrail/live/list/", query)
        assert response.streaming and response["Content-Type"] == "text/event-stream"
        writer = asyncio.create_task(write())
        async for event in events(response.streaming_content):
            found = [t["id"] for t in event.get("data", {}).get("tasks", [])]
            if found:
                await writer
                return found, event["id"]
        raise AssertionError("the stream ended")

    found, cursor = asyncio.run(asyncio.wait_for(read(), 30))
    assert found == ["wanted-1"]
    assert cursor.endswith(",wanted-1")
