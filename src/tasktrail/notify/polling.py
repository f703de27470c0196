"""Polling: no server needed. One query per interval per process, whatever the streams."""

from __future__ import annotations

import asyncio

from .. import store
from .base import Listener, Notifier


class PollingNotifier(Notifier):
    name = "polling"

    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def listen(self, listener: Listener) -> None:
        listener.connected()
        while True:
            await asyncio.sleep(self.interval)
            known = listener.known()
            if not known:
                continue
            current = await listener.read(store.versions, list(known))
            listener.changed(i for i, version in current.items() if version != known.get(i))
