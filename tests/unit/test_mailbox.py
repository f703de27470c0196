"""A stream's mailbox: the latest record at once, ``None`` on a timeout, nothing queued."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from tasktrail.notify import Mailbox
from tasktrail.records import TaskRecord


def record(second: int) -> TaskRecord:
    fields: dict[str, Any] = {name: None for name in TaskRecord.__dataclass_fields__}
    return TaskRecord(**{**fields, "updated_at": datetime(2030, 1, 1, 0, 0, second, tzinfo=UTC)})


def run_alone[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the browser tests' sync Playwright keeps an
    event loop running in the main thread for the rest of the session."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def test_a_record_put_before_waiting_is_had_at_once_and_only_the_latest() -> None:
    async def run() -> tuple[TaskRecord | None, TaskRecord | None]:
        mailbox = Mailbox()
        mailbox.put(record(1))
        mailbox.put(record(2))
        return await mailbox.get(10), await mailbox.get(0.05)

    latest, then = run_alone(run())
    assert latest == record(2) and then is None


def test_a_waiting_stream_wakes_on_put_and_times_out_without_one() -> None:
    async def run() -> tuple[TaskRecord | None, float, TaskRecord | None, float]:
        mailbox = Mailbox()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, mailbox.put, record(3))
        began = time.monotonic()
        woke = await mailbox.get(10)
        woke_after = time.monotonic() - began
        began = time.monotonic()
        timed_out = await mailbox.get(0.1)
        return woke, woke_after, timed_out, time.monotonic() - began

    woke, woke_after, timed_out, waited = run_alone(run())
    assert woke == record(3) and woke_after < 5
    assert timed_out is None and 0.09 <= waited < 5


def test_a_cancelled_wait_leaves_the_mailbox_usable() -> None:
    async def run() -> TaskRecord | None:
        mailbox = Mailbox()
        waiting = asyncio.ensure_future(mailbox.get(10))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        mailbox.put(record(4))
        return await mailbox.get(1)

    assert run_alone(run()) == record(4)
