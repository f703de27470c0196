"""kombu's filesystem transport, with each message written atomically.

kombu creates a message file under its final name and only then writes it, and
the consumer reads without waiting for the writer's lock. A worker polling in
between reads an empty file and stops with "Unrecoverable error: JSONDecodeError"
(kombu 5.7; see celery/kombu#1551). Here a message is written under a name the
consumer ignores and renamed into place, which is atomic within one file system.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's stubs call this argument "message" in one base class, "payload" in the other.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu's consumer looks for: "<ms>_<uuid>.<queue>.msg".
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        partial = f"{path}.partial"
        try:
            with open(partial, "w", encoding="utf-8") as file:
                file.write(dumps(payload))
            os.replace(partial, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
