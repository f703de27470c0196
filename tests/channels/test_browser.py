"""What a person sees: the widget with ``websocket=True`` in Chromium, over a real
uvicorn running Channels: live over the socket, and still live when the socket is
refused (it falls back to polling and the event stream).

Playwright's sync API keeps an event loop running in the main thread, where Django
refuses the ORM: the database is set up (and cleaned up) from another thread, outside
pytest-django's per-test transaction, so this module cleans up what it made.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.test import override_settings

from tests.chromium import screenshot
from tests.conftest import client_for, make_user, recorded

from .conftest import Server, cookie_of

WIDGET = "[data-tasktrail-status]"


@pytest.fixture
def orm(django_db_setup: None, django_db_blocker: Any) -> Iterator[Callable[..., Any]]:
    """Run a function that uses the ORM in a thread of its own; what it made (users
    named ``wb-*``, tasks ``wb-*``) is deleted after the test."""
    pool = ThreadPoolExecutor(1)

    def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_db_blocker.unblock():
            return pool.submit(function, *args, **kwargs).result()

    yield call
    call(_clean_up)
    pool.shutdown()


def _clean_up() -> None:
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    from tasktrail import store
    from tasktrail.models import Task

    for task_id in Task.objects.filter(task_id__startswith="wb-").values_list("task_id", flat=True):
        store.forget(task_id)
    store.sync()
    User.objects.filter(username__startswith="wb-").delete()
    Session.objects.all().delete()


def owner_cookies(server: Server) -> tuple[Any, list[dict[str, str]]]:
    user = make_user(f"wb-{uuid.uuid4().hex[:8]}")
    client = client_for(user)
    cookies = [
        {"name": k, "value": v.value, "url": server.origin} for k, v in client.cookies.items()
    ]
    return user, cookies


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.channels.urls")
def test_the_page_carries_the_socket_beside_the_stream() -> None:
    """The page the browser opens. (Its marker also has pytest-django make the test
    database when this module runs alone: the browser tests have none.)"""
    owner = make_user("owner")
    recorded("wb-page", "STARTED", owner_id=owner.pk)
    html = client_for(owner).get("/ws-widget/wb-page/").content.decode()
    assert 'data-events-url="/tasktrail/tasks/wb-page/events/"' in html
    assert 'data-ws-url="/tasktrail/tasks/wb-page/ws/"' in html


def sockets_of(page: Any) -> list[str]:
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


@pytest.mark.browser
def test_the_widget_follows_its_task_over_the_socket(
    server: Server, page: Any, request: pytest.FixtureRequest, orm: Callable[..., Any]
) -> None:
    owner, cookies = orm(owner_cookies, server)
    orm(recorded, "wb-1", "STARTED", name="app.report", owner_id=owner.pk)
    page.context.add_cookies(cookies)
    opened = sockets_of(page)
    page.goto(f"{server.origin}/ws-widget/wb-1/")
    page.wait_for_selector(f"{WIDGET}[data-connection='live'][data-state='STARTED']")
    screenshot(page, request, "running")
    orm(recorded, "wb-1", "SUCCESS", name="app.report", owner_id=owner.pk, result='"report.pdf"')
    page.wait_for_selector(f"{WIDGET}[data-state='SUCCESS'][data-connection='closed']")
    screenshot(page, request, "done")
    widget = page.locator(WIDGET)
    assert widget.get_attribute("data-socket-close") == "1000"
    assert page.locator(".tasktrail-outcome").inner_text() == 'Result: "report.pdf"'
    assert opened == [f"ws://127.0.0.1:{server.port}/tasktrail/tasks/wb-1/ws/"]
    # No event stream and no polling: the socket carried it all.
    assert not [a for a in page.answers if "/events/" in a or "/status/" in a], page.answers


@pytest.mark.browser
def test_a_refused_socket_falls_back_and_the_page_stays_live(
    tight_server: Server, page: Any, orm: Callable[..., Any]
) -> None:
    owner, cookies = orm(owner_cookies, tight_server)
    orm(recorded, "wb-2", "STARTED", name="app.report", owner_id=owner.pk)
    # The viewer already holds its 2 streams (another tab, say).
    held = threading.Event()
    release = threading.Event()
    cookie = orm(cookie_of, owner)
    thread = threading.Thread(target=hold, args=(tight_server, cookie, held, release))
    thread.start()
    try:
        assert held.wait(30), "the two sockets did not open"
        page.context.add_cookies(cookies)
        page.goto(f"{tight_server.origin}/ws-widget/wb-2/")
        page.wait_for_selector(f"{WIDGET}[data-socket-close='4429']")
        orm(recorded, "wb-2", "SUCCESS", name="app.report", owner_id=owner.pk, result="1")
        page.wait_for_selector(f"{WIDGET}[data-state='SUCCESS']")
        assert [a for a in page.answers if "/status/" in a], page.answers
    finally:
        release.set()
        thread.join(30)


def hold(server: Server, cookie: str, held: threading.Event, release: threading.Event) -> None:
    """Two sockets of one viewer, open until ``release`` is set."""
    from websockets.asyncio.client import connect

    url = server.ws("/tasktrail/tasks/wb-2/ws/")
    headers = {"Cookie": cookie}

    async def both() -> None:
        async with (
            connect(url, additional_headers=headers) as a,
            connect(url, additional_headers=headers) as b,
        ):
            await a.recv()
            await b.recv()
            held.set()
            while not release.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(both())
