"""The live-stream limits: per viewer, per process, and who counts as one viewer."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tasktrail import conf
from tasktrail.web import limits
from tasktrail.web.limits import Gate, Lease, Refusal


def test_a_viewer_past_its_share_is_refused_with_429_and_others_are_not() -> None:
    gate = Gate()
    leases = [gate.admit("user:1", per_viewer=2, per_process=10) for _ in range(2)]
    assert all(isinstance(lease, Lease) for lease in leases)
    refused = gate.admit("user:1", per_viewer=2, per_process=10)
    assert isinstance(refused, Refusal) and refused.status == 429
    assert refused.headers["Retry-After"] == str(limits.RETRY_AFTER)
    assert isinstance(gate.admit("user:2", per_viewer=2, per_process=10), Lease)


def test_a_full_process_refuses_with_503_until_a_stream_closes() -> None:
    gate = Gate()
    first = gate.admit("a", per_viewer=5, per_process=2)
    assert isinstance(first, Lease)
    assert isinstance(gate.admit("b", per_viewer=5, per_process=2), Lease)
    refused = gate.admit("c", per_viewer=5, per_process=2)
    assert isinstance(refused, Refusal) and refused.status == 503
    with first:
        pass
    assert gate.open_streams() == 1 and gate.open_streams("a") == 0
    assert isinstance(gate.admit("c", per_viewer=5, per_process=2), Lease)


def test_a_lease_released_twice_is_a_bug_not_a_free_stream() -> None:
    gate = Gate()
    lease = gate.admit("a", per_viewer=1, per_process=1)
    assert isinstance(lease, Lease)
    lease.release()
    with pytest.raises(RuntimeError):
        lease.release()
    assert gate.open_streams() == 0


def test_the_viewer_is_the_user_then_the_session_then_the_link_then_the_address() -> None:
    assert limits.viewer_key(7, "s3cret", "tok", "10.0.0.1") == "user:7"
    by_session = limits.viewer_key(None, "s3cret", "tok", "10.0.0.1")
    assert by_session.startswith("session:") and "s3cret" not in by_session
    by_link = limits.viewer_key(None, None, "tok", "10.0.0.1")
    assert by_link.startswith("link:") and "tok" not in by_link
    assert limits.viewer_key(None, None, None, "10.0.0.1") == "address:10.0.0.1"
    assert limits.viewer_key(None, "", "", None) == "address:unknown"


@pytest.mark.parametrize("name", ["STREAMS_PER_VIEWER", "STREAMS_PER_PROCESS"])
@pytest.mark.parametrize("value", [0, -1, True, "8"])
def test_limits_must_be_positive_ints(name: str, value: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=name):
        conf.load({name: value})


def test_admit_reads_the_settings() -> None:
    with override_settings(TASKTRAIL={"STREAMS_PER_VIEWER": 1}):
        lease = limits.admit("viewer:settings-test")
        try:
            assert isinstance(lease, Lease)
            refused = limits.admit("viewer:settings-test")
            assert isinstance(refused, Refusal) and refused.status == 429
        finally:
            assert isinstance(lease, Lease)
            lease.release()
