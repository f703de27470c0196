"""The broker's view of the queues: how many messages wait, and who consumes them.

The one place that reads the broker (the workers page, the queues page and the metrics
endpoint ask it), with kombu's passive ``queue_declare``: it declares nothing, and
answers ``message_count`` and ``consumer_count`` on RabbitMQ. On Redis it answers the
length of the queue's list summed over kombu's priority sub-queues (``celery``,
``celery\\x06\\x163``, ...); Redis keeps no consumers, so they are unknown (``None``),
and a queue with no message is no key at all, which kombu calls "not found": 0 there.

Bounded: a broker that is down or does not answer gives a :class:`BrokerView` with
``error`` set after at most ``TASKTRAIL["BROKER_TIMEOUT"]`` (socket timeouts on the
connection, and a deadline on the whole read in case a transport ignores them), so a
page never hangs and never fails for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue as _queue
import time
from collections.abc import Iterable, Sequence
from typing import Any

import celery
from kombu.transport import virtual

from . import conf
from .threads import start_daemon


@dataclasses.dataclass(frozen=True, slots=True)
class QueueDepth:
    name: str
    #: Messages waiting in the broker (ready, not yet delivered to a worker).
    messages: int | None
    #: Consumers the broker knows; ``None`` where it keeps none (Redis).
    consumers: int | None
    #: Why this queue could not be read (not declared on RabbitMQ, an error), or "".
    problem: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerView:
    #: The broker's transport (``redis``, ``amqp``, ...).
    transport: str
    queues: tuple[QueueDepth, ...]
    #: Set when the broker could not be read at all; ``queues`` is empty then.
    error: str = ""
    #: How long the read took, in seconds.
    took: float = 0.0

    @property
    def up(self) -> bool:
        return not self.error

    def depth(self, name: str) -> QueueDepth | None:
        return next((q for q in self.queues if q.name == name), None)


def configured(app: celery.Celery) -> list[str]:
    """The queues the Celery app declares (``task_queues``, else the default queue)."""
    return sorted(app.amqp.queues.keys()) or [app.conf.task_default_queue]


def _timeouts(transport: str, seconds: float) -> dict[str, float]:
    # The socket options each transport knows; an unknown one would be refused.
    if transport in {"redis", "rediss"}:
        return {"socket_timeout": seconds, "socket_connect_timeout": seconds}
    if transport in {"amqp", "pyamqp", "amqps"}:
        return {"read_timeout": seconds, "write_timeout": seconds}
    return {}


def _declare(channel: Any, name: str) -> tuple[int, int]:
    _, messages, consumers = channel.queue_declare(queue=name, passive=True)
    return int(messages), int(consumers)


def _read(app: celery.Celery, names: Sequence[str], seconds: float) -> list[QueueDepth]:
    connection = app.connection_for_read()
    transport = connection.transport_cls
    connection = app.connection_for_read(
        connect_timeout=seconds,
        transport_options={**(connection.transport_options or {}), **_timeouts(transport, seconds)},
    )
    found = []
    with connection:
        # One attempt: a refused connection is an answer, not a reason to wait.
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=max(1, round(seconds))
        )
        virtual_transport = isinstance(connection.transport, virtual.Transport)
        for name in names:
            # A refused passive declare closes the channel on RabbitMQ: one per queue.
            channel: Any = connection.channel()
            try:
                messages, consumers = _declare(channel, name)
                found.append(QueueDepth(name, messages, None if virtual_transport else consumers))
            except connection.channel_errors as refused:
                if virtual_transport:  # Redis: an empty queue is no key
                    found.append(QueueDepth(name, 0, None))
                else:
                    found.append(QueueDepth(name, None, None, f"not declared ({refused})"))
            finally:
                # A channel the broker closed already.
                with contextlib.suppress(Exception):
                    channel.close()
    return found


def read(app: celery.Celery, names: Iterable[str]) -> BrokerView:
    """Each queue's depth and consumers, within ``TASKTRAIL["BROKER_TIMEOUT"]``."""
    seconds = conf.get().BROKER_TIMEOUT.total_seconds()
    wanted = sorted(set(names))
    transport = str(app.connection_for_read().transport_cls)
    answer: _queue.Queue[list[QueueDepth] | BaseException] = _queue.Queue(maxsize=1)

    def work() -> None:
        try:
            answer.put(_read(app, wanted, seconds))
        except BaseException as error:  # handed to the caller below
            answer.put(error)

    started = time.monotonic()
    # A thread, so a transport that ignores its socket timeouts cannot hold the page:
    # past the deadline it is abandoned (a daemon; its sockets time out on their own).
    start_daemon(work, "tasktrail-broker-read")
    try:
        got = answer.get(timeout=seconds)
    except _queue.Empty:
        got = TimeoutError(f"the broker did not answer within {seconds:g} s")
    took = time.monotonic() - started
    if isinstance(got, BaseException):
        return BrokerView(transport, (), f"{type(got).__name__}: {got}".strip(), took)
    return BrokerView(transport, tuple(got), "", took)
