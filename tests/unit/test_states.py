"""The pure state machine: phases, ordering, and what a late or duplicate event does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasktrail import states
from tasktrail.states import (
    FAILURE,
    LOST,
    PENDING,
    PROGRESS,
    RECEIVED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    Phase,
    accepts,
)


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        (PENDING, Phase.WAITING),
        (RECEIVED, Phase.WAITING),
        (RETRY, Phase.WAITING),
        (STARTED, Phase.RUNNING),
        (PROGRESS, Phase.RUNNING),
        ("UPLOADING", Phase.RUNNING),
        (SUCCESS, Phase.DONE),
        (FAILURE, Phase.DONE),
        (REVOKED, Phase.DONE),
        (LOST, Phase.DONE),
    ],
)
def test_every_state_has_a_phase(state: str, phase: Phase) -> None:
    assert states.phase(state) is phase


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ((PENDING, 1), (RECEIVED, 1)),
        ((RECEIVED, 1), (STARTED, 1)),
        ((STARTED, 1), (PROGRESS, 1)),
        ((PROGRESS, 1), (PROGRESS, 1)),  # a progress update merges
        ((PROGRESS, 1), ("UPLOADING", 1)),  # custom running states move freely
        (("UPLOADING", 1), (PROGRESS, 1)),
        ((STARTED, 1), (RETRY, 1)),
        ((RETRY, 1), (RECEIVED, 2)),  # the next attempt
        ((RETRY, 2), (STARTED, 3)),
        ((PENDING, 1), (SUCCESS, 1)),  # events in between may be lost
        ((STARTED, 3), (REVOKED, 0)),  # a revoke from outside knows no attempt
        ((LOST, 1), (SUCCESS, 1)),  # a real outcome replaces LOST
        ((LOST, 1), (STARTED, 2)),  # so does a re-run
        ((STARTED, 1), (LOST, 1)),
    ],
)
def test_forward_moves_are_accepted(current: tuple[str, int], new: tuple[str, int]) -> None:
    assert accepts(*current, *new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ((SUCCESS, 1), (STARTED, 1)),  # a STARTED arriving after the outcome
        ((SUCCESS, 1), (SUCCESS, 1)),  # duplicate outcome
        ((FAILURE, 1), (SUCCESS, 1)),
        ((REVOKED, 1), (STARTED, 2)),  # nothing comes back from done
        ((STARTED, 1), (RECEIVED, 1)),  # late RECEIVED from the worker's main process
        ((STARTED, 1), (PENDING, 1)),  # late PENDING from the publisher
        ((PROGRESS, 1), (STARTED, 1)),
        ((RECEIVED, 2), (RETRY, 1)),  # a retry of an older attempt
        ((LOST, 1), (PENDING, 1)),
    ],
)
def test_backward_late_and_duplicate_events_are_ignored(
    current: tuple[str, int], new: tuple[str, int]
) -> None:
    assert not accepts(*current, *new)


@pytest.mark.parametrize("bad", ["progress", "", "A" * 51, "NO SPACES", "DROP;--", 42, None])
def test_malformed_states_are_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(states.InvalidState, match="state"):
        states.validate(bad)


def test_retries_left_counts_from_max_retries() -> None:
    assert states.attempts_left(1, 3) == 3
    assert states.attempts_left(4, 3) == 0
    assert states.attempts_left(2, None) is None


_STATES = st.sampled_from(
    [PENDING, RECEIVED, STARTED, PROGRESS, "UPLOADING", RETRY, SUCCESS, FAILURE, REVOKED, LOST]
)
_EVENTS = st.tuples(_STATES, st.integers(min_value=0, max_value=4))


@given(st.lists(_EVENTS, min_size=1, max_size=12))
def test_once_done_only_lost_ever_changes(events: list[tuple[str, int]]) -> None:
    state, attempt = events[0]
    for new_state, new_attempt in events[1:]:
        was_final = states.is_done(state) and state != LOST
        if accepts(state, attempt, new_state, new_attempt):
            assert not was_final
            state, attempt = new_state, new_attempt or attempt
        if was_final:
            assert states.is_done(state)
