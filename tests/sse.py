"""Reading Server-Sent Events in tests, from any async stream of bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any


async def events(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[dict[str, Any]]:
    """Each event as ``{"id": ..., "data": <decoded JSON>}``; comments as ``{"comment": ...}``."""
    buffer = ""
    async for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event: dict[str, Any] = {}
            for line in block.splitlines():
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "":
                    event["comment"] = value
                elif field == "data":
                    event["data"] = json.loads(value)
                else:
                    event[field] = value
            yield event
