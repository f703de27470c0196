"""PostgreSQL LISTEN/NOTIFY: writers notify in the same database they write to.

The notification is one statement after the flush's write, on the flushing thread's
connection; a listener holds one extra connection per web process.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from .base import Listener, Notifier, parse, payloads

CHANNEL = "tasktrail"
_NOTIFY = "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload"
# Django's connection parameters that psycopg's async connection does not take.
_DJANGO_ONLY = ("cursor_factory", "context")
# A listener only reads: without keepalives a server that vanished (no reset) would
# leave it waiting forever instead of reconnecting.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
               "keepalives_count": 3}  # fmt: skip


class PostgresNotifier(Notifier):
    name = "postgres"

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def publish(self, task_ids: list[str]) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(_NOTIFY, [CHANNEL, list(payloads(task_ids))])

    def _params(self) -> dict[str, Any]:
        params = connections[self.alias].get_connection_params()
        return {**_KEEPALIVES, **{k: v for k, v in params.items() if k not in _DJANGO_ONLY}}

    async def listen(self, listener: Listener) -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(**self._params(), autocommit=True)
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            listener.connected()
            async for notification in conn.notifies():
                listener.changed(parse(notification.payload))
