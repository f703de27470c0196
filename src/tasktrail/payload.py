"""The payload rules: what of a task's arguments, result, messages and tracebacks is
stored, and how much. One home for every cap and for redaction.

Each text a task can send has a cap with a setting; a value over it is stored cut, with
a marker that says so, never refused (the task's state matters more than its payload):

============================  ========================  ==========================
what                          cap                       over it
============================  ========================  ==========================
arguments (as JSON)           ``MAX_ARGS_BYTES``        ``{"tasktrail_omitted": …}``
result (as JSON)              ``MAX_RESULT_BYTES``      the task fails, saying why
progress meta (as JSON)       ``MAX_META_BYTES``        ``{"tasktrail_omitted": …}``
progress and error messages   ``MAX_MESSAGE_BYTES``     cut, ``… [cut: …]`` at the end
tracebacks                    ``MAX_TRACEBACK_BYTES``   the end kept, ``[cut: …]`` first
============================  ========================  ==========================

Redaction: a keyword whose name contains one of ``REDACT_KWARGS``, in any case, has its
value stored as ``"[redacted]"``, at any depth of the arguments (``{"credentials":
{"Password": …}}`` too), as Django's own error reports treat settings.
"""

from __future__ import annotations

from typing import Any

from kombu.exceptions import EncodeError

from . import conf, jsoncodec

REDACTED = "[redacted]"
OMITTED = "tasktrail_omitted"


def _capped_json(value: Any, limit: int, setting: str) -> str:
    """``value`` as JSON, or a marker saying why it is not stored."""
    try:
        text = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        return jsoncodec.dumps({OMITTED: f"not JSON: {exc}"})
    if len(text) > limit:
        return jsoncodec.dumps({OMITTED: f"{len(text)} bytes, over {setting} ({limit})"})
    return text


def _hidden(name: object, words: frozenset[str]) -> bool:
    lowered = str(name).lower()
    return any(word in lowered for word in words)


def redact(value: Any, words: frozenset[str] | None = None) -> Any:
    """``value`` with the values of secret-looking keys replaced, at any depth."""
    words = conf.get().REDACT_KWARGS if words is None else words
    if isinstance(value, dict):
        return {k: REDACTED if _hidden(k, words) else redact(v, words) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if not any(isinstance(v, dict | list | tuple) for v in value):
            return value  # the common case, flat arguments: nothing to walk
        return [redact(v, words) for v in value]
    return value


def args_json(value: Any) -> str | None:
    """Positional arguments as capped JSON, secrets inside mappings redacted."""
    if value is None:
        return None
    return _capped_json(redact(value), conf.get().MAX_ARGS_BYTES, "MAX_ARGS_BYTES")


def kwargs_json(kwargs: Any) -> str | None:
    """Keyword arguments as capped JSON, secrets redacted."""
    return args_json(kwargs)


def _mentions(value: Any, marker: str) -> bool:
    if isinstance(value, dict):
        return marker in value or any(_mentions(v, marker) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_mentions(v, marker) for v in value)
    return bool(value == marker)


def arguments_intact(args: Any, kwargs: Any) -> bool:
    """Whether stored arguments are the ones sent (not capped, not redacted)."""
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return False
    stored = [args, kwargs]
    return not _mentions(stored, OMITTED) and not _mentions(stored, REDACTED)


def result_json(task_id: str, value: Any) -> str:
    """A result as JSON, or :class:`kombu.exceptions.EncodeError` with the reason.

    Celery turns an ``EncodeError`` raised while storing a result into the task's
    ``FAILURE``, so the user sees why instead of a lost result.
    """
    try:
        text = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        raise EncodeError(
            f"result of task {task_id} is not JSON-serialisable ({exc}); tasktrail stores "
            "JSON only: return dicts, lists, strings, numbers, booleans or None"
        ) from None
    limit = conf.get().MAX_RESULT_BYTES
    if len(text) > limit:
        raise EncodeError(
            f"result of task {task_id} is {len(text)} bytes of JSON, over "
            f"TASKTRAIL['MAX_RESULT_BYTES'] ({limit})"
        )
    return text


def exception(encoded: Any) -> Any:
    """An exception as Celery encodes it (``{"exc_type", "exc_message": [args], ...}``)
    with its text arguments capped like messages, so a huge message fails nothing."""
    if not isinstance(encoded, dict) or not isinstance(encoded.get("exc_message"), list | tuple):
        return encoded
    args = [message(a) if isinstance(a, str) else a for a in encoded["exc_message"]]
    return {**encoded, "exc_message": args}


def meta_json(text: str | None) -> str | None:
    """Progress meta (already JSON) capped at ``MAX_META_BYTES``."""
    limit = conf.get().MAX_META_BYTES
    if text is None or len(text) <= limit:
        return text
    return jsoncodec.dumps({OMITTED: f"{len(text)} bytes, over MAX_META_BYTES ({limit})"})


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _prefix(text: str, size: int) -> str:
    return text.encode("utf-8", "replace")[:size].decode("utf-8", "ignore")


def message(text: str) -> str:
    """A progress or error message capped at ``MAX_MESSAGE_BYTES`` (UTF-8), cut at the end."""
    limit = conf.get().MAX_MESSAGE_BYTES
    if len(text) <= limit // 4 or (size := _size(text)) <= limit:
        return text
    marker = f"… [cut: {size} bytes, over MAX_MESSAGE_BYTES ({limit})]"
    return _prefix(text, max(0, limit - len(marker.encode()))) + marker


def traceback(text: str) -> str:
    """A traceback capped at ``MAX_TRACEBACK_BYTES``: its end (where the error is) kept."""
    limit = conf.get().MAX_TRACEBACK_BYTES
    if len(text) <= limit // 4 or (size := _size(text)) <= limit:
        return text
    marker = f"[cut: {size} bytes, over MAX_TRACEBACK_BYTES ({limit}); the end follows] …\n"
    keep = max(0, limit - len(marker.encode()))
    tail = text.encode("utf-8", "replace")[-keep:].decode("utf-8", "ignore") if keep else ""
    return marker + tail
