"""Bounded waits on tasktrail's own database connections (PostgreSQL).

Why: libpq waits forever by default. A flush thread connecting to a server that
accepts but never answers (a frozen host, a stalled proxy) would hang on ``connect``,
and one whose peer vanished without a reset would wait on a dead socket until the
kernel gives up (about 15 minutes). tasktrail's own connections (the flush thread's
and the worker upkeep thread's, opened in those threads and used by nothing else)
therefore get a connect timeout and TCP keepalives, unless ``DATABASES`` ``OPTIONS``
already set them: whatever the deployment says wins. These do not bound a statement
on a live but silent connection (a proxy that stops forwarding still acknowledges
TCP); the buffer's bounded final flush does, by spooling (see
:mod:`tasktrail.store.buffer`).
"""

from __future__ import annotations

from typing import Any, Final

from django.db.backends.base.base import BaseDatabaseWrapper

#: libpq parameters, as ``DATABASES[...]["OPTIONS"]`` spells them. A dead peer is
#: noticed after about 10 + 3 x 5 = 25 s idle, or 30 s with data unacknowledged.
DEFAULTS: Final[dict[str, Any]] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
_MARK = "_tasktrail_bounded"


def bound(connection: BaseDatabaseWrapper) -> None:
    """Give ``connection`` (this thread's, tasktrail's own) the defaults it lacks.

    Applied when it next connects; idempotent. Django's connection pool (``OPTIONS
    ["pool"]``) is shared with the project's own connections, so it is left alone.
    """
    if connection.vendor != "postgresql" or getattr(connection, _MARK, False):
        return
    if "pool" in connection.settings_dict.get("OPTIONS", {}):
        return
    original = connection.get_connection_params

    def params() -> dict[str, Any]:
        found: dict[str, Any] = original()
        for name, value in DEFAULTS.items():
            found.setdefault(name, value)
        return found

    # On this wrapper only (one per thread): the shared settings dict is not touched.
    connection.get_connection_params = params  # type: ignore[method-assign]
    setattr(connection, _MARK, True)
