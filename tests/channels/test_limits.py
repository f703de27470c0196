"""The stream limits on WebSockets: a server allowing 2 streams per viewer and 3 per
process refuses the next one with a close code and reason that say when to retry, and
takes the lease back when a socket goes away, however it goes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasktrail.channels import REFUSED_BASE
from tasktrail.web import limits
from tests.conftest import make_user, recorded

from .conftest import Closed, Server, cookie_of, follow, run

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/tasktrail/tasks/ws-limited/ws/"


@pytest.fixture
def owner() -> User:
    user = make_user("owner")
    # Never done: each socket stays open until its client goes.
    recorded("ws-limited", "STARTED", owner_id=user.pk)
    return user


@contextlib.asynccontextmanager
async def opened(server: Server, cookie: str) -> AsyncIterator[Any]:
    """A socket that got its snapshot (so the server holds its lease). Refused, it is
    tried again for a while: the sockets of the test before may still be closing."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + 10
    while True:
        async with connect(server.ws(PATH), additional_headers={"Cookie": cookie}) as socket_:
            try:
                first = json.loads(await asyncio.wait_for(socket_.recv(), 20))
            except ConnectionClosed:
                assert time.monotonic() < deadline, f"refused: {socket_.close_reason}"
                await asyncio.sleep(0.05)
                continue
            assert first["id"] == "ws-limited"
            yield socket_
            return


async def admitted_again(server: Server, cookie: str, timeout: float = 10) -> float:
    """Seconds until the server admits one more socket of this viewer."""
    started = time.monotonic()
    while True:
        closed = await follow_briefly(server, cookie)
        if closed is None:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"still refused: {closed}"
        await asyncio.sleep(0.05)


async def follow_briefly(server: Server, cookie: str) -> Closed | None:
    """``None`` if a socket opened and got its snapshot; the refusal otherwise."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(server.ws(PATH), additional_headers={"Cookie": cookie}) as socket_:
        try:
            await asyncio.wait_for(socket_.recv(), 20)
        except ConnectionClosed:
            return Closed([], socket_.close_code, socket_.close_reason or "")
        return None


def test_one_viewer_past_its_limit_is_told_to_come_back(tight_server: Server, owner: User) -> None:
    cookie = cookie_of(owner)

    async def scenario() -> tuple[Closed, float]:
        async with opened(tight_server, cookie), opened(tight_server, cookie) as second:
            refused = await follow(tight_server.ws(PATH), cookie)
            await second.close()
            # The closed socket's lease is back: a third one is admitted again.
            return refused, await admitted_again(tight_server, cookie)

    refused, waited = run(scenario())
    assert (refused.messages, refused.code) == ([], REFUSED_BASE + 429)
    assert json.loads(refused.reason) == {
        "error": "too many live streams open for this viewer",
        "retry_after": limits.RETRY_AFTER,
    }
    print(f"\nlease back {waited * 1000:.0f} ms after a clean close")


def test_a_full_process_refuses_everyone_with_503(tight_server: Server, owner: User) -> None:
    other = make_user("other", is_staff=True)
    cookies = [cookie_of(owner), cookie_of(owner), cookie_of(other)]
    third = cookie_of(make_user("third"))

    async def scenario() -> Closed:
        async with (
            opened(tight_server, cookies[0]),
            opened(tight_server, cookies[1]),
            opened(tight_server, cookies[2]),
        ):
            # A fresh viewer, below its own limit: the process is full.
            return await follow(tight_server.ws(PATH), third)

    refused = run(scenario())
    assert (refused.messages, refused.code) == ([], REFUSED_BASE + 503)
    assert json.loads(refused.reason)["retry_after"] == limits.RETRY_AFTER


def test_a_client_that_vanishes_gives_its_lease_back(tight_server: Server, owner: User) -> None:
    cookie = cookie_of(owner)

    async def scenario() -> float:
        async with opened(tight_server, cookie):
            async with opened(tight_server, cookie) as second:
                # No close frame: the TCP connection is simply cut, as a crashed browser's.
                second.transport.abort()
            return await admitted_again(tight_server, cookie)

    waited = run(scenario())
    print(f"\nlease back {waited * 1000:.0f} ms after a cut connection")
