"""The HTTP surfaces through Django's own test clients: JSON, SSE, status page, widget.

Records are written through the store as the worker would. Access is checked on every
surface: an id of someone else's task must be indistinguishable from an unknown id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import AsyncClient, Client, override_settings

import tasktrail
from tasktrail import access, options
from tests.conftest import client_for, make_user, recorded, require
from tests.sse import events

pytestmark = pytest.mark.django_db(transaction=True)

SURFACES = ("status", "events", "page")


def url(surface: str, task_id: str, token: str = "") -> str:
    suffix = {"status": "status/", "events": "events/", "page": ""}[surface]
    query = f"?token={token}" if token else ""
    return f"/tasktrail/tasks/{task_id}/{suffix}{query}"


@pytest.fixture
def users() -> dict[str, User]:
    return {
        "alice": make_user("alice"),
        "bob": make_user("bob"),
        "staff": make_user("staff", is_staff=True),
        "viewer": make_user("viewer", "view_task"),
    }


@pytest.fixture
def failed(users: dict[str, User]) -> str:
    """Alice's task that failed, with arguments and a traceback."""
    recorded(
        "failed-1",
        "FAILURE",
        name="tests.testapp.tasks.boom",
        owner_id=users["alice"].pk,
        args='["<b>payload</b>"]',
        kwargs="{}",
        error_type="ValueError",
        error_message="bad <input>",
        traceback="Traceback (most recent call last): ...",
    )
    return "failed-1"


def get(user: User | None, path: str, **headers: str) -> tuple[int, bytes]:
    """Status and body over ASGI, as a browser gets them (a stream: its first event)."""

    async def fetch() -> tuple[int, bytes]:
        client = AsyncClient()
        if user is not None:
            await client.aforce_login(user)
        response = await client.get(path, headers=headers)
        if not response.streaming:
            return response.status_code, response.content
        async for event in events(response.streaming_content):
            if "data" in event:
                return response.status_code, json.dumps(event["data"]).encode()
        return response.status_code, b""

    return asyncio.run(fetch())


def test_the_owner_sees_state_progress_and_error_summary_not_traceback_or_arguments(
    users: dict[str, User], failed: str
) -> None:
    response = client_for(users["alice"]).get(url("status", failed))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert (data["state"], data["phase"], data["ready"], data["attempt"]) == (
        "FAILURE",
        "done",
        True,
        1,
    )
    assert data["error"] == {"type": "ValueError", "message": "bad <input>"}
    assert "result" not in data and "args" not in data and "kwargs" not in data
    assert data["version"] == tasktrail_version(failed)


def tasktrail_version(task_id: str) -> int:
    from tasktrail import notify

    return notify.version(tasktrail.get(task_id))


def test_staff_also_see_traceback_and_arguments(users: dict[str, User], failed: str) -> None:
    data = client_for(users["staff"]).get(url("status", failed)).json()
    assert data["error"]["traceback"].startswith("Traceback")
    assert data["args"] == ["<b>payload</b>"]


def test_a_view_permission_shows_every_task_but_not_tracebacks(
    users: dict[str, User], failed: str
) -> None:
    data = client_for(users["viewer"]).get(url("status", failed)).json()
    assert data["error"] == {"type": "ValueError", "message": "bad <input>"}
    assert "args" not in data


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_someone_elses_task_is_indistinguishable_from_an_unknown_one(
    users: dict[str, User], failed: str, surface: str, who: str
) -> None:
    visitor = users.get(who)
    forbidden = get(visitor, url(surface, failed))
    unknown = get(visitor, url(surface, "never-sent"))
    assert forbidden[0] == unknown[0] == 404
    assert forbidden == unknown
    if surface != "page":
        assert json.loads(forbidden[1]) == {"error": "not found"}


@pytest.mark.parametrize("surface", SURFACES)
def test_a_signed_link_opens_the_task_without_a_login(failed: str, surface: str) -> None:
    status, body = get(None, url(surface, failed, access.sign(failed)))
    assert status == 200
    if surface != "page":
        assert json.loads(body)["state"] == "FAILURE"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: access.sign("failed-1", timedelta(seconds=-1)), id="expired"),
        pytest.param(lambda: access.sign("another-task"), id="other-task"),
        pytest.param(lambda: access.sign("failed-1")[:-2] + "xx", id="tampered"),
        pytest.param(lambda: "not-a-token", id="garbage"),
    ],
)
def test_a_bad_link_is_a_404(failed: str, token: Callable[[], str]) -> None:
    for surface in SURFACES:
        assert get(None, url(surface, failed, token()))[0] == 404


def test_status_url_opens_the_status_page_for_anyone_holding_it(failed: str) -> None:
    link = tasktrail.status_url(failed)
    response = Client().get(link)
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    page = response.content.decode()
    assert "data-tasktrail-status" in page
    assert f"token={link.split('token=')[1]}" in page  # the widget keeps using the link


def test_a_task_can_keep_its_result_from_everyone_but_staff(users: dict[str, User]) -> None:
    from tests.testapp.tasks import keeps_result_private

    recorded(
        "private-1",
        "SUCCESS",
        name="tests.testapp.tasks.keeps_result_private",
        owner_id=users["alice"].pk,
        result='{"secret": "only staff see this"}',
        show_result=options.show_result(keeps_result_private),
    )
    assert "result" not in client_for(users["alice"]).get(url("status", "private-1")).json()
    staff = client_for(users["staff"]).get(url("status", "private-1")).json()
    assert staff["result"] == {"secret": "only staff see this"}


def test_show_result_false_hides_results_from_owners(users: dict[str, User]) -> None:
    recorded("hidden-1", "SUCCESS", owner_id=users["alice"].pk, result="42")
    with override_settings(TASKTRAIL={"SHOW_RESULT": False}):
        assert "result" not in client_for(users["alice"]).get(url("status", "hidden-1")).json()
    assert client_for(users["alice"]).get(url("status", "hidden-1")).json()["result"] == 42


@pytest.mark.parametrize("name", ["tests.testapp.tasks.add", "not.imported.anywhere"])
def test_an_outcome_no_process_recorded_a_flag_for_is_shown_to_staff_only(
    users: dict[str, User], name: str
) -> None:
    """Sent by name from a process that never imported the task, and not started yet (or
    recorded before the flag existed): the web process's registry does not decide."""
    recorded(
        "unknown-1",
        "FAILURE",
        name=name,
        owner_id=users["alice"].pk,
        error_type="ValueError",
        error_message="personal data",
        show_result=options.UNKNOWN,
    )
    with override_settings(TASKTRAIL={"SHOW_RESULT": True}):
        owner = client_for(users["alice"]).get(url("status", "unknown-1")).json()
        staff = client_for(users["staff"]).get(url("status", "unknown-1")).json()
    assert owner["state"] == "FAILURE" and "error" not in owner
    assert staff["error"]["message"] == "personal data"


@pytest.fixture(params=["polling", "redis"])
def notifier(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis":
        require("Redis", "127.0.0.1", 6379)
    with override_settings(TASKTRAIL={"NOTIFY": request.param, "POLL_INTERVAL": 0.05}):
        yield request.param


def test_the_stream_sends_the_snapshot_then_each_change_then_closes(
    users: dict[str, User], notifier: str
) -> None:
    recorded("live-1", "STARTED", owner_id=users["alice"].pk)

    async def follow() -> list[dict[str, Any]]:
        client = AsyncClient()
        await client.aforce_login(users["alice"])
        response = await client.get(url("events", "live-1"))
        assert response["Content-Type"] == "text/event-stream"
        received: list[dict[str, Any]] = []
        async for event in events(response.streaming_content):
            if "data" not in event:
                continue
            received.append(event)
            step = len(received)
            # Written from another thread, as a worker's flush would be.
            state = "SUCCESS" if step == 3 else "PROGRESS"
            await asyncio.to_thread(
                recorded, "live-1", state, progress_current=float(step), progress_total=3.0
            )
        return received

    received = asyncio.run(asyncio.wait_for(follow(), 20))
    states = [e["data"]["state"] for e in received]
    assert states == ["STARTED", "PROGRESS", "PROGRESS", "SUCCESS"], notifier
    assert [e["data"]["progress"]["current"] for e in received[1:]] == [1.0, 2.0, 3.0]
    assert [e["id"] for e in received] == [str(e["data"]["version"]) for e in received]


def test_a_stream_resumed_at_the_final_event_is_told_to_stop(
    users: dict[str, User], failed: str
) -> None:
    version = str(tasktrail_version(failed))
    assert get(users["alice"], url("events", failed), **{"Last-Event-ID": version})[0] == 204
    status, body = get(users["alice"], url("events", failed), **{"Last-Event-ID": "1"})
    assert (status, json.loads(body)["state"]) == (200, "FAILURE")


def test_an_idle_stream_sends_keep_alive_comments(users: dict[str, User]) -> None:
    recorded("idle-1", "PENDING", owner_id=users["alice"].pk)

    async def first_comment() -> dict[str, Any]:
        client = AsyncClient()
        await client.aforce_login(users["alice"])
        response = await client.get(url("events", "idle-1"))
        async for event in events(response.streaming_content):
            if "comment" in event:
                return event
        raise AssertionError("the stream ended")

    with override_settings(TASKTRAIL={"NOTIFY": "polling", "KEEPALIVE_INTERVAL": 0.1}):
        assert asyncio.run(asyncio.wait_for(first_comment(), 10)) == {"comment": "keep-alive"}


def test_under_wsgi_the_stream_declines_and_the_widget_polls(
    users: dict[str, User], failed: str
) -> None:
    # Django's test Client is a WSGI client; the answer must not depend on the task.
    response = client_for(users["alice"]).get(url("events", failed))
    assert response.status_code == 503
    assert client_for(users["bob"]).get(url("events", failed)).content == response.content


def test_the_widget_escapes_what_it_renders_and_links_its_script() -> None:
    html = Template("{% load tasktrail %}{% tasktrail_status task_id label=label %}").render(
        Context({"task_id": 'x"><script>', "label": "<img src=x onerror=alert(1)>"})
    )
    assert "<script>" not in html.replace('<script src="', "")
    assert "<img" not in html
    assert 'role="status"' in html and 'aria-live="polite"' in html and "<progress" in html
    script = Client().get(html.split('<script src="')[1].split('"')[0].replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert "immutable" in script["Cache-Control"]
    assert b"innerHTML" not in script.content


def test_a_signed_widget_carries_its_link_to_both_urls() -> None:
    html = Template("{% load tasktrail %}{% tasktrail_status 'abc' signed=True %}").render(
        Context()
    )
    assert html.count("?token=") == 2
