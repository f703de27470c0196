"""The notifier interface: writers publish the ids they wrote; each web process listens.

A notification says only "these tasks may have changed"; listeners read the records
themselves, so a lost or repeated notification costs a read, never a wrong state.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; Redis takes the same size.
MAX_PAYLOAD = 7900


class Listener(Protocol):
    """What a notifier's :meth:`Notifier.listen` reports to (the process's hub)."""

    def connected(self) -> None:
        """Listening (again): anything may have changed while it was not."""

    def changed(self, task_ids: Iterable[str]) -> None:
        """These tasks may have changed."""

    def known(self) -> Mapping[str, datetime | None]:
        """The watched tasks and the version of each last read (``None``: not yet)."""

    async def read(self, function: Any, task_ids: Collection[str]) -> Any:
        """``function(task_ids)`` in the hub's database thread."""


class Notifier(abc.ABC):
    name: ClassVar[str]

    def publish(self, task_ids: list[str]) -> None:  # noqa: B027  (a no-op is a valid notifier)
        """Tell listeners that ``task_ids`` were written; called in the store's flush thread."""

    @abc.abstractmethod
    async def listen(self, listener: Listener) -> None:
        """Report changes to ``listener`` until the connection is lost (then raise)."""


def payloads(task_ids: Iterable[str], limit: int = MAX_PAYLOAD) -> Iterator[str]:
    """JSON arrays of the ids, each at most ``limit`` bytes."""
    chunk: list[str] = []
    size = 2
    for task_id in task_ids:
        item = json.dumps(task_id)
        if chunk and size + len(item.encode()) + 1 > limit:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(item)
        size += len(item.encode()) + 1
    if chunk:
        yield "[" + ",".join(chunk) + "]"


def parse(payload: str | bytes) -> list[str]:
    """The ids in a payload; anything else on the channel is ignored."""
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]
