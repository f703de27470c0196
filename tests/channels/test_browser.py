"""What a person sees: the widget with ``websocket=True`` in Chromium, over a real
uvicorn running Channels: live over the socket, and still live when the socket is
refused (it falls back to the event stream or polling)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.chromium import screenshot
from tests.conftest import client_for, make_user, recorded

from .conftest import Server, cookie_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDGET = "[data-tasktrail-status]"


def log_in(page: Any, server: Server, user: User) -> None:
    client = client_for(user)
    page.context.add_cookies(
        [{"name": k, "value": v.value, "url": server.origin} for k, v in client.cookies.items()]
    )


def sockets_of(page: Any) -> list[str]:
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def test_the_widget_follows_its_task_over_the_socket(
    server: Server, page: Any, request: pytest.FixtureRequest
) -> None:
    owner = make_user("owner")
    recorded("wb-1", "STARTED", name="app.report", owner_id=owner.pk)
    log_in(page, server, owner)
    opened = sockets_of(page)
    page.goto(f"{server.origin}/ws-widget/wb-1/")
    page.wait_for_selector(f"{WIDGET}[data-connection='live'][data-state='STARTED']")
    screenshot(page, request, "running")
    recorded("wb-1", "SUCCESS", name="app.report", owner_id=owner.pk, result='"report.pdf"')
    page.wait_for_selector(f"{WIDGET}[data-state='SUCCESS'][data-connection='closed']")
    screenshot(page, request, "done")
    widget = page.locator(WIDGET)
    assert widget.get_attribute("data-socket-close") == "1000"
    assert page.locator(".tasktrail-outcome").inner_text() == 'Result: "report.pdf"'
    assert opened == [f"ws://127.0.0.1:{server.port}/tasktrail/tasks/wb-1/ws/"]
    # No event stream and no polling: the socket carried it all.
    assert not [a for a in page.answers if "/events/" in a or "/status/" in a], page.answers


def test_a_refused_socket_falls_back_and_the_page_stays_live(
    tight_server: Server, page: Any
) -> None:
    owner = make_user("owner")
    recorded("wb-2", "STARTED", name="app.report", owner_id=owner.pk)
    # The viewer already holds its 2 streams (another tab, say).
    held = threading.Event()
    release = threading.Event()
    cookie = cookie_of(owner)
    thread = threading.Thread(target=hold, args=(tight_server, cookie, held, release))
    thread.start()
    try:
        assert held.wait(30), "the two sockets did not open"
        log_in(page, tight_server, owner)
        page.goto(f"{tight_server.origin}/ws-widget/wb-2/")
        page.wait_for_selector(f"{WIDGET}[data-socket-close='4429']")
        recorded("wb-2", "SUCCESS", name="app.report", owner_id=owner.pk, result="1")
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
