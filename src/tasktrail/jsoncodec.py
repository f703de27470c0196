"""JSON in and out of the store, with kombu's type markers.

Celery sends task arguments with kombu's JSON, which round-trips ``datetime``,
``Decimal``, ``UUID`` and registered types through ``{"__type__": ...}`` markers.
The store keeps those markers, so results read back are the values returned.
Pickle is never used.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.utils.json import JSONEncoder as _KombuEncoder
from kombu.utils.json import object_hook


class CeleryJSONEncoder(_KombuEncoder):
    pass


class CeleryJSONDecoder(json.JSONDecoder):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("object_hook", object_hook)
        super().__init__(**kwargs)


def dumps(value: Any) -> str:
    """Encode ``value``; raises ``TypeError``/``ValueError`` if it is not JSON."""
    return json.dumps(value, cls=CeleryJSONEncoder, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    return json.loads(text, cls=CeleryJSONDecoder)
