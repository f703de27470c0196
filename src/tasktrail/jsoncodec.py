"""JSON in and out of the store, with kombu's type markers.

Celery sends task arguments with kombu's JSON, which round-trips ``datetime``,
``Decimal``, ``UUID`` and registered types through ``{"__type__": ...}`` markers.
The store keeps those markers, so results read back are the values returned.
Pickle is never used.
"""

from __future__ import annotations

import json
from typing import Any, Final

from kombu.utils.json import JSONEncoder as _KombuEncoder
from kombu.utils.json import object_hook


class CeleryJSONEncoder(_KombuEncoder):
    pass


class CeleryJSONDecoder(json.JSONDecoder):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("object_hook", object_hook)
        super().__init__(**kwargs)


#: One encoder for every call: ``json.dumps(cls=...)`` builds one per call (2.3 µs for an
#: empty list, against 1.4 µs), and the write path encodes three values per task. An
#: encoder keeps no state between calls, so threads can share it.
_ENCODER: Final = CeleryJSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Encode ``value``; raises ``TypeError``/``ValueError`` if it is not JSON."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    return json.loads(text, cls=CeleryJSONDecoder)
