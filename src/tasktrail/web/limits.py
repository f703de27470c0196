"""How many live streams one viewer, and one process, may hold open at once.

One rule for every live transport (the SSE streams of a task, a group and a list, and
the WebSocket consumer): a stream is opened only with a :class:`Lease` from
:func:`admit`, and returns it when it closes. A refusal says why and when to come back:

- **429** when this viewer already holds ``STREAMS_PER_VIEWER`` streams. A viewer is a
  logged-in user, else a session, else a signed link, else a client address
  (:func:`viewer_key`), so one anonymous client cannot hold a process's streams
  (a probe held 200 from one client, each a thread before streams were async).
- **503** when the process holds ``STREAMS_PER_PROCESS`` streams: another process (or
  this one, later) can take it.

Both carry ``Retry-After``; the widget and the dashboard poll the JSON meanwhile, so a
refused viewer still sees every change, only later.

The counts are per process and in memory: a stream lives in one process, and a count
shared between processes would cost a round trip per stream for no better answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import Counter

from .. import conf

#: Seconds a refused client waits before it tries a stream again (it polls meanwhile).
RETRY_AFTER = 10


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    retry_after: int = RETRY_AFTER

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), "Cache-Control": "no-store"}


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """One open stream of ``viewer``; :meth:`release` it exactly once (``with`` does)."""

    viewer: str
    _gate: Gate = dataclasses.field(repr=False, compare=False)

    def release(self) -> None:
        self._gate.release(self.viewer)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class Gate:
    """The streams open in this process, by viewer."""

    def __init__(self) -> None:
        # Streams open and close on the event loop, but WSGI fallbacks and tests may
        # touch the counts from threads: the lock makes each change one step.
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._total = 0

    def admit(self, viewer: str, per_viewer: int, per_process: int) -> Lease | Refusal:
        with self._lock:
            if self._total >= per_process:
                return Refusal(503, "this server holds as many live streams as it may")
            if self._open[viewer] >= per_viewer:
                return Refusal(429, "too many live streams open for this viewer")
            self._open[viewer] += 1
            self._total += 1
        return Lease(viewer, self)

    def release(self, viewer: str) -> None:
        with self._lock:
            if self._open[viewer] <= 0:
                raise RuntimeError(f"stream lease of {viewer!r} released twice")
            self._open[viewer] -= 1
            if not self._open[viewer]:
                del self._open[viewer]
            self._total -= 1

    def open_streams(self, viewer: str | None = None) -> int:
        with self._lock:
            return self._total if viewer is None else self._open[viewer]


_GATE = Gate()


def admit(viewer: str) -> Lease | Refusal:
    """A lease for one more stream of ``viewer`` (see :func:`viewer_key`), or why not."""
    settings = conf.get()
    return _GATE.admit(viewer, settings.STREAMS_PER_VIEWER, settings.STREAMS_PER_PROCESS)


def open_streams(viewer: str | None = None) -> int:
    """Streams open in this process (of one viewer, if given)."""
    return _GATE.open_streams(viewer)


def viewer_key(
    user_pk: object | None,
    session_key: str | None,
    token: str | None,
    address: str | None,
) -> str:
    """Who a stream is counted against: the user, else the session, else the link,
    else the client's address. Secrets (session keys, tokens) are hashed, so the key
    may be logged."""
    if user_pk is not None:
        return f"user:{user_pk}"
    if session_key:
        return f"session:{_digest(session_key)}"
    if token:
        return f"link:{_digest(token)}"
    return f"address:{address or 'unknown'}"


def _digest(secret: str) -> str:
    return hashlib.blake2b(secret.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
