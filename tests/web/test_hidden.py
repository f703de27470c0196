"""A task someone may not see and an id never sent answer alike: status, body, every
header, and the queries run, on the JSON status, the stream and the page, for every
kind of visitor; and a signed link opens its own task, never a later one under its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db.backends import utils
from django.test import AsyncClient, Client
from django.utils import timezone

from tasktrail import access, store
from tests.conftest import client_for, make_user, recorded

from .conftest import Server

pytestmark = pytest.mark.django_db(transaction=True)

HIDDEN = "hidden-task"
UNKNOWN = "never-sent"
SURFACES = ("status", "events", "page")


def url(surface: str, task_id: str, token: str | None = None) -> str:
    suffix = {"status": "status/", "events": "events/", "page": ""}[surface]
    return f"/tasktrail/tasks/{task_id}/{suffix}" + (f"?token={token}" if token else "")


@pytest.fixture
def alice() -> User:
    user = make_user("alice")
    recorded(
        HIDDEN,
        "SUCCESS",
        name="app.report",
        owner_id=user.pk,
        sent_at=timezone.now(),
        # A large result: reading it must not make a hidden task slower than none.
        result='"' + "x" * 100_000 + '"',
    )
    return user


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run meanwhile, in any thread (the stream reads in a pool
    thread, with a connection of its own, where ``CaptureQueriesContext`` sees nothing)."""
    seen: list[str] = []
    lock = threading.Lock()
    original = utils.CursorWrapper._execute_with_wrappers

    def counted(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            seen.append(sql)
        return original(self, sql, *args, **kwargs)

    utils.CursorWrapper._execute_with_wrappers = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        utils.CursorWrapper._execute_with_wrappers = original  # type: ignore[method-assign]


def _anonymous_with_session() -> Client:
    client = Client()
    session = client.session
    session["cart"] = 3
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key or ""
    return client


Visitor = Callable[[], tuple[Client, Callable[[str], str | None]]]
VISITORS: dict[str, Visitor] = {
    "anonymous": lambda: (Client(), lambda task_id: None),
    "anonymous-with-session": lambda: (_anonymous_with_session(), lambda task_id: None),
    "logged-in-other-user": lambda: (client_for(make_user("bob")), lambda task_id: None),
    "logged-in-with-garbage-token": lambda: (
        client_for(make_user("carol")),
        lambda task_id: "not-a-token",
    ),
    "bad-token": lambda: (Client(), lambda task_id: access.sign(task_id)[:-3] + "xyz"),
    "expired-token": lambda: (Client(), lambda task_id: access.sign(task_id, timedelta(-1))),
    "token-for-another-task": lambda: (Client(), lambda task_id: access.sign("other")),
}


def _answer(client: Client, path: str) -> tuple[int, dict[str, str], bytes]:
    """Status, every header and the body, over WSGI (status, page) or ASGI (stream)."""
    if "/events/" not in path:
        response = client.get(path)
        return response.status_code, dict(response.headers), response.content

    async def fetch() -> tuple[int, dict[str, str], bytes]:
        asynchronous = AsyncClient()
        asynchronous.cookies = client.cookies
        response = await asynchronous.get(path)
        body = b"" if response.streaming else response.content
        return response.status_code, dict(response.headers), body

    return asyncio.run(fetch())


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("who", list(VISITORS))
def test_a_hidden_task_and_an_unknown_id_answer_and_work_alike(
    alice: User, surface: str, who: str
) -> None:
    client, token_for = VISITORS[who]()
    answers, work = [], []
    for task_id in (HIDDEN, UNKNOWN, HIDDEN, UNKNOWN):  # a second round: warm caches alike
        path = url(surface, task_id, token_for(task_id))
        with statements() as run:
            answers.append(_answer(client, path))
        work.append(run)
    hidden, unknown = answers[2], answers[3]
    assert hidden[0] == unknown[0] == 404
    assert hidden[1] == unknown[1]  # every header, Vary: Cookie included
    assert hidden[2] == unknown[2]
    assert work[2] == work[3], "the same statements, in the same order"
    assert "Cookie" in hidden[1].get("Vary", "")


def test_the_not_found_page_carries_the_status_pages_headers(alice: User) -> None:
    opened = Client().get(url("page", HIDDEN, access.sign(HIDDEN)))
    dead = Client().get(url("page", HIDDEN, access.sign(HIDDEN, timedelta(-1))))
    assert (opened.status_code, dead.status_code) == (200, 404)
    for header in ("Cache-Control", "Referrer-Policy"):
        assert dead[header] == opened[header], header


@pytest.mark.parametrize("surface", SURFACES)
def test_over_uvicorn_hidden_and_unknown_send_the_same_headers(
    alice: User, surface: str, uvicorn_server: Server
) -> None:
    bob = client_for(make_user("bob"))
    cookie = f"{settings.SESSION_COOKIE_NAME}={bob.cookies[settings.SESSION_COOKIE_NAME].value}"
    for who in ("", cookie):
        hidden = uvicorn_server.get(url(surface, HIDDEN), who)
        unknown = uvicorn_server.get(url(surface, UNKNOWN), who)
        assert hidden.status == unknown.status == 404
        drop = {"date"}
        assert {k: v for k, v in hidden.headers.items() if k not in drop} == {
            k: v for k, v in unknown.headers.items() if k not in drop
        }
        assert hidden.body == unknown.body
        assert "cookie" in hidden.headers.get("vary", "").lower()


def _opens(token: str, task_id: str = HIDDEN) -> list[int]:
    return [_answer(Client(), url(s, task_id, token))[0] for s in SURFACES]


def test_a_link_does_not_open_a_later_task_that_reuses_the_id(alice: User) -> None:
    link = access.sign(HIDDEN)
    assert _opens(link) == [200, 200, 200]
    store.forget(HIDDEN)
    assert _opens(link) == [404, 404, 404]
    # Sent again under the same id, by someone else, a moment later.
    later = timezone.now() + timedelta(microseconds=1)
    recorded(HIDDEN, "SUCCESS", owner_id=make_user("mallory").pk, sent_at=later)
    assert _opens(link) == [404, 404, 404]
    assert _opens(access.sign(HIDDEN)) == [200, 200, 200]


def test_a_link_made_before_its_task_is_recorded_opens_it_but_not_a_reuse() -> None:
    link = access.sign("pre-signed")
    recorded("pre-signed", "STARTED", sent_at=timezone.now())
    assert _opens(link, "pre-signed") == [200, 200, 200]
    store.forget("pre-signed")
    recorded("pre-signed", "STARTED", sent_at=timezone.now() + access.SIGNING_SKEW * 2)
    assert _opens(link, "pre-signed") == [404, 404, 404]


def test_a_task_recorded_without_a_sent_time_opens_with_its_link() -> None:
    # Sent by a producer without tasktrail: the worker's events are all there is.
    recorded("worker-only", "STARTED", worker="w@h")
    assert _opens(access.sign("worker-only"), "worker-only")[0] == 200
