"""Settings validation and payload rules: clear errors, nothing silently lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from kombu.exceptions import EncodeError

from tasktrail import conf, jsoncodec, payload


def test_defaults() -> None:
    settings = conf.load({})
    assert settings.LOST_AFTER == timedelta(seconds=30)
    assert settings.FLUSH_INTERVAL == timedelta(milliseconds=20)


def test_numbers_are_seconds() -> None:
    assert conf.load({"RESULT_EXPIRES": 60}).RESULT_EXPIRES == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"RESULT_EXPIRE": 1}, "Unknown TASKTRAIL setting"),
        ({"LOST_AFTER": "30s"}, "timedelta or a number of seconds"),
        ({"LOST_AFTER": -1}, "must not be negative"),
        ({"MAX_RESULT_BYTES": 0}, "positive int"),
        ({"CLEANUP_BATCH": 0}, "positive int"),
        ({"LOST_AFTER": 5, "HEARTBEAT_INTERVAL": 5}, "at least twice HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": 0}, "must be more than 0 seconds"),
        ({"NOTIFY": "kafka"}, r"NOTIFY.*one of auto, postgres"),
        ({"RETRY": {"retries": 3}}, "unknown retry option"),
        ({"RETRY": {"max_attempts": 0}}, "max_attempts must be an int >= 1"),
        ({"RETRY": {"backoff": -1}}, "backoff must be a number of seconds >= 0"),
        ({"RETRY": {"retry_on": ["builtins.len"]}}, "is not an exception class"),
        ({"RETRY": {"retry_on": ["no.such.Module"]}}, "No module named"),
    ],
)
def test_bad_settings_are_refused_clearly(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        conf.load(raw)


def test_expiry_prefers_tasktrail_then_celery_then_defaults(settings: object) -> None:
    assert conf.expires_after(True, 3600, None) == timedelta(hours=1)
    assert conf.expires_after(False, 3600, None) == timedelta(days=7)
    assert conf.expires_after(False, 3600, 60) == timedelta(minutes=1)
    settings.TASKTRAIL = {"RESULT_EXPIRES": 5, "FAILURE_EXPIRES": 10}  # type: ignore[attr-defined]
    assert conf.expires_after(True, 3600, None) == timedelta(seconds=5)
    assert conf.expires_after(False, 3600, 60) == timedelta(seconds=10)


def test_a_result_that_is_not_json_fails_with_the_reason() -> None:
    with pytest.raises(EncodeError, match=r"not JSON-serialisable.*set"):
        payload.result_json("t", {1, 2})


def test_an_oversized_result_fails_with_the_limit(settings: object) -> None:
    settings.TASKTRAIL = {"MAX_RESULT_BYTES": 100}  # type: ignore[attr-defined]
    with pytest.raises(EncodeError, match="over TASKTRAIL\\['MAX_RESULT_BYTES'\\] \\(100\\)"):
        payload.result_json("t", "x" * 200)


def test_large_arguments_are_replaced_by_a_marker(settings: object) -> None:
    settings.TASKTRAIL = {"MAX_ARGS_BYTES": 50}  # type: ignore[attr-defined]
    stored = jsoncodec.loads(payload.args_json(["y" * 100]) or "")
    assert "over MAX_ARGS_BYTES (50)" in stored["tasktrail_omitted"]


def test_secret_keyword_arguments_are_redacted() -> None:
    stored = jsoncodec.loads(payload.kwargs_json({"password": "hunter2", "to": "a@b.c"}) or "")
    assert stored == {"password": payload.REDACTED, "to": "a@b.c"}


def test_redaction_matches_names_in_any_case_by_part_and_at_any_depth() -> None:
    kwargs = {
        "Password": "a",
        "API_KEY": "b",
        "Token": "c",
        "db_password": "d",
        "credentials": {"password": "e", "user": "ann"},
        "items": [{"access_token": "f"}],
        "to": "a@b.c",
    }
    stored = jsoncodec.loads(payload.kwargs_json(kwargs) or "")
    hidden = payload.REDACTED
    assert stored == {
        "Password": hidden,
        "API_KEY": hidden,
        "Token": hidden,
        "db_password": hidden,
        "credentials": {"password": hidden, "user": "ann"},
        "items": [{"access_token": hidden}],
        "to": "a@b.c",
    }
    # Mappings passed positionally are redacted too.
    assert jsoncodec.loads(payload.args_json([{"Secret": "s"}, 3]) or "") == [
        {"Secret": hidden},
        3,
    ]
    assert not payload.arguments_intact([], stored)
    assert payload.arguments_intact([1], {"to": "a@b.c"})


def test_redaction_words_from_settings_are_matched_in_any_case(settings: object) -> None:
    settings.TASKTRAIL = {"REDACT_KWARGS": ["IBAN"]}  # type: ignore[attr-defined]
    stored = jsoncodec.loads(payload.kwargs_json({"iban": "DE00", "password": "p"}) or "")
    assert stored == {"iban": payload.REDACTED, "password": "p"}


def test_messages_tracebacks_and_meta_are_capped_with_a_marker(settings: object) -> None:
    settings.TASKTRAIL = {  # type: ignore[attr-defined]
        "MAX_MESSAGE_BYTES": 100,
        "MAX_TRACEBACK_BYTES": 200,
        "MAX_META_BYTES": 50,
    }
    message = payload.message("m" * 5_000_000)
    assert len(message.encode()) <= 100 and message.endswith("over MAX_MESSAGE_BYTES (100)]")
    assert payload.message("é" * 60).endswith("over MAX_MESSAGE_BYTES (100)]"), "bytes, not chars"
    assert payload.message("short") == "short"
    traceback = payload.traceback("line\n" * 1000 + "ValueError: the end")
    assert len(traceback.encode()) <= 200 and traceback.endswith("ValueError: the end")
    assert traceback.startswith("[cut: ")
    meta = jsoncodec.loads(payload.meta_json(jsoncodec.dumps({"x": "y" * 100})) or "")
    assert "over MAX_META_BYTES (50)" in meta[payload.OMITTED]


def test_kombu_types_round_trip() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    value = {"at": datetime(2026, 1, 1, tzinfo=UTC), "price": Decimal("1.10")}
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
