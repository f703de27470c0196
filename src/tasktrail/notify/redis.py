"""Redis pub/sub: for projects on SQLite (or another database) with Redis at hand."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from .base import Listener, Notifier, parse, payloads

logger = logging.getLogger("tasktrail.notify")

#: After a failed publish, writers skip publishing this long instead of waiting on Redis.
QUIET_AFTER_FAILURE = 5.0
_TIMEOUT = 1.0


def load_client() -> None:
    """Import redis-py, where the notifier is chosen (a worker chooses before it forks
    its pool) or at start-up, not on the first publish or stream.

    Why: importing redis-py 8 took 2.0 s on a loaded 2-core machine, all of it on the
    flush thread, which held that process's writes (a task's progress) and the first
    stream's subscription behind it; a Redis broker hid this, as kombu imports it.
    """
    import redis  # noqa: F401


class RedisNotifier(Notifier):
    name = "redis"

    def __init__(self, url: str, channel: str) -> None:
        load_client()
        self.url = url
        self.channel = channel
        self._reset()
        # A worker forks pool processes while its own flush thread may be publishing.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._quiet_until = 0.0

    def _sync_client(self) -> Any:
        import redis

        with self._lock:
            if self._client is None:
                # redis-py's pool notices a fork and reconnects in the child.
                self._client = redis.Redis.from_url(
                    self.url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT
                )
            return self._client

    def publish(self, task_ids: list[str]) -> None:
        import redis

        if time.monotonic() < self._quiet_until:
            return
        try:
            with self._sync_client().pipeline(transaction=False) as pipe:
                for payload in payloads(task_ids):
                    pipe.publish(self.channel, payload)
                pipe.execute()
        except redis.RedisError:
            # Writes must not wait on Redis: live views catch up when it is back.
            self._quiet_until = time.monotonic() + QUIET_AFTER_FAILURE
            logger.warning("tasktrail: cannot publish changes to Redis", exc_info=True)

    async def listen(self, listener: Listener) -> None:
        import redis.asyncio

        # Pings while idle, so a vanished server is noticed and the hub reconnects.
        client = redis.asyncio.Redis.from_url(self.url, health_check_interval=30)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    # Also after redis-py reconnected by itself: messages may be lost.
                    listener.connected()
                elif message["type"] == "message":
                    listener.changed(parse(message["data"]))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
