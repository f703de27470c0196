"""The WebSocket consumer over a real uvicorn and a real client: the access rule of the
event stream, its payloads, resuming, and one clean refusal for every bad id.

Writes come from this process (as a worker's would), published by the notifier both
processes chose; the server reads them through its hub. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tasktrail import access, ids
from tasktrail.channels import DONE, FORBIDDEN, NOT_FOUND
from tasktrail.templatetags.tasktrail import socket_url
from tests.conftest import client_for, make_user, recorded

from .conftest import Closed, Server, cookie_of, follow, run

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND_REASON = '{"error":"not found"}'


def task_path(task_id: str, **query: str) -> str:
    """The socket's path for ``task_id``, as the widget's tag makes it."""
    encoded = f"?{urllib.parse.urlencode(query)}" if query else ""
    return socket_url(reverse("tasktrail:events", args=[task_id]), encoded)


async def write(task_id: str, state: str, **values: Any) -> None:
    """:func:`recorded` from a socket's coroutine (the ORM wants a thread there)."""
    await asyncio.to_thread(recorded, task_id, state, **values)


def refused_as_unknown(closed: Closed) -> None:
    assert (closed.messages, closed.code, closed.reason) == ([], NOT_FOUND, NOT_FOUND_REASON)


@pytest.fixture
def owner() -> User:
    return make_user("owner")


def test_the_owner_gets_the_snapshot_then_each_change_then_a_normal_close(
    server: Server, owner: User
) -> None:
    recorded("ws-1", "STARTED", name="app.report", owner_id=owner.pk, worker="w@h")

    cookie = cookie_of(owner)

    async def scenario() -> tuple[dict[str, Any], Closed]:
        from websockets.asyncio.client import connect

        url = server.ws(task_path("ws-1"))
        async with connect(url, additional_headers={"Cookie": cookie}) as socket_:
            first = json.loads(await socket_.recv())
            # The change lands while the socket is open: the hub must carry it.
            await write("ws-1", "SUCCESS", name="app.report", owner_id=owner.pk, result="42")
            rest = [json.loads(m) async for m in socket_]
        return first, Closed(rest, socket_.close_code, socket_.close_reason)

    first, closed = run(scenario())
    assert first["state"] == "STARTED"
    assert [m["state"] for m in closed.messages] == ["SUCCESS"]
    assert (closed.code, closed.reason) == (DONE, "")
    # The very payload of the JSON status (and so of the event stream's data).
    status = client_for(owner).get("/tasktrail/tasks/ws-1/status/").json()
    assert closed.messages[0] == status
    assert closed.messages[0]["result"] == 42
    assert "worker" not in first  # an owner sees no internals


def test_another_user_gets_exactly_what_an_unknown_id_gets(server: Server, owner: User) -> None:
    recorded("ws-hidden", "STARTED", owner_id=owner.pk)
    mallory = cookie_of(make_user("mallory"))
    hidden = run(follow(server.ws(task_path("ws-hidden")), mallory))
    unknown = run(follow(server.ws(task_path("ws-never-sent")), mallory))
    anonymous = run(follow(server.ws(task_path("ws-hidden"))))
    refused_as_unknown(hidden)
    assert hidden == unknown == anonymous


def test_staff_see_internals(server: Server, owner: User) -> None:
    recorded("ws-staff", "SUCCESS", owner_id=owner.pk, worker="w@h", result="1")
    staff = cookie_of(make_user("staff", is_staff=True))
    closed = run(follow(server.ws(task_path("ws-staff")), staff))
    assert [m["worker"] for m in closed.messages] == ["w@h"]
    assert closed.code == DONE


def test_a_signed_link_opens_its_task_and_no_other(server: Server, owner: User) -> None:
    recorded("ws-linked", "SUCCESS", owner_id=owner.pk, result='"ok"')
    recorded("ws-other", "SUCCESS", owner_id=owner.pk, result='"no"')
    token = access.sign("ws-linked")
    opened = run(follow(server.ws(task_path("ws-linked", token=token))))
    assert [(m["id"], m["result"]) for m in opened.messages] == [("ws-linked", "ok")]
    assert opened.code == DONE
    refused_as_unknown(run(follow(server.ws(task_path("ws-other", token=token)))))
    refused_as_unknown(run(follow(server.ws(task_path("ws-linked", token=token + "x")))))


def test_a_reconnect_with_the_last_version_gets_only_what_is_new(
    server: Server, owner: User
) -> None:
    cookie = cookie_of(owner)
    recorded("ws-resume", "SUCCESS", owner_id=owner.pk, result="1")
    first = run(follow(server.ws(task_path("ws-resume")), cookie))
    version = str(first.messages[-1]["version"])
    # It has the final state: closed at once, nothing sent (EventSource's 204).
    again = run(follow(server.ws(task_path("ws-resume", last_event_id=version)), cookie))
    assert (again.messages, again.code) == ([], DONE)
    older = run(follow(server.ws(task_path("ws-resume", last_event_id="1")), cookie))
    assert [m["version"] for m in older.messages] == [int(version)]


ODD = ["a/b", "100%", "with space", "..", "ünï/cödé ✓ 日本", "q?x=1#frag", "x" * ids.MAX_LENGTH]


@pytest.mark.parametrize("task_id", ODD)
def test_an_odd_id_opens(server: Server, owner: User, task_id: str) -> None:
    recorded(task_id, "SUCCESS", owner_id=owner.pk, result="1")
    closed = run(follow(server.ws(task_path(task_id)), cookie_of(owner)))
    assert [m["id"] for m in closed.messages] == [task_id]
    assert closed.code == DONE


BAD_PATHS = [
    "/tasktrail/tasks/a%00b/ws/",  # a NUL: no table holds it
    f"/tasktrail/tasks/{'y' * (ids.MAX_LENGTH + 1)}/ws/",  # longer than the column
    "/tasktrail/tasks/a/b/ws/",  # an unencoded slash: no route
    "/tasktrail/tasks//ws/",
    "/tasktrail/tasks/ws-bad/ws/extra/",
    "/tasktrail/nothing-here/",
    "/tasktrail/groups/%ff%fe/ws/",  # not UTF-8
    "/tasktrail/groups/never-sent/ws/",
    "/tasktrail/chains/never-sent/ws/",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_a_bad_id_or_path_is_refused_as_an_unknown_id(
    server: Server, owner: User, path: str
) -> None:
    refused_as_unknown(run(follow(server.ws(path), cookie_of(owner))))
    refused_as_unknown(run(follow(server.ws(path))))


def test_a_page_of_another_site_is_refused_before_any_lookup(server: Server, owner: User) -> None:
    recorded("ws-origin", "SUCCESS", owner_id=owner.pk, result="1")
    cookie, path = cookie_of(owner), task_path("ws-origin")
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{server.port}.evil"):
        closed = run(follow(server.ws(path), cookie, origin=origin))
        assert (closed.messages, closed.code) == ([], FORBIDDEN), origin
        assert json.loads(closed.reason) == {"error": "cross-site WebSocket refused"}
    same = run(follow(server.ws(path), cookie, origin=server.origin))
    assert (len(same.messages), same.code) == (1, DONE)


def test_a_group_streams_its_members_until_done(server: Server, owner: User) -> None:
    for member in ("wg-1", "wg-2"):
        recorded(member, "STARTED", group_id="ws-group", owner_id=owner.pk)

    cookie = cookie_of(owner)

    async def scenario() -> list[dict[str, Any]]:
        from websockets.asyncio.client import connect

        url = server.ws("/tasktrail/groups/ws-group/ws/")
        async with connect(url, additional_headers={"Cookie": cookie}) as socket_:
            seen = [json.loads(await socket_.recv())]
            await write("wg-1", "SUCCESS", group_id="ws-group", owner_id=owner.pk, result="1")
            seen.append(json.loads(await socket_.recv()))
            await write("wg-2", "SUCCESS", group_id="ws-group", owner_id=owner.pk, result="2")
            seen += [json.loads(m) async for m in socket_]
            assert socket_.close_code == DONE
        return seen

    seen = run(scenario())
    assert [m["done"] for m in seen] == [0, 1, 2]
    assert seen[-1]["ready"] is True
    status = client_for(owner).get("/tasktrail/groups/ws-group/status/").json()
    assert seen[-1] == status
    refused_as_unknown(
        run(follow(server.ws("/tasktrail/groups/ws-group/ws/"), cookie_of(make_user("eve"))))
    )
