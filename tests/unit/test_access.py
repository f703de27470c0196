"""The disclosure rule on values: what redact() and redact_history() leave of a task."""

from __future__ import annotations

import dataclasses

import pytest
from django.test import override_settings
from django.utils import timezone

from tasktrail import access, options
from tasktrail.records import TaskError, TaskRecord, Transition

NOW = timezone.now()
RECORD = TaskRecord(
    id="t", name="n", queue="q", state="FAILURE", attempt=2, max_retries=3,
    args=["a"], kwargs={"k": 1}, result={"exc_message": "m"},
    error=TaskError("ValueError", "m", "Traceback"), progress=None, owner_id=7,
    parent_id="", root_id="", group_id="", worker="w@h", worker_pid=99,
    sent_at=NOW, received_at=None, started_at=NOW, finished_at=NOW, updated_at=NOW,
    next_retry_at=None, expires_at=None, show_result=options.DEFAULT,
)  # fmt: skip
HISTORY = [
    Transition("STARTED", 1, NOW, "w@h", {"pid": 99}),
    Transition("RETRY", 1, NOW, "", {"error_type": "E", "error_message": "m", "traceback": "tb",
                                      "next_retry_at": "soon", "something_new": "?"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "setting", "shown"),
    [
        (options.SHOWN, False, True),
        (options.HIDDEN, True, False),
        (options.DEFAULT, True, True),
        (options.DEFAULT, False, False),
        (options.UNKNOWN, True, False),
        ("anything else", True, False),
    ],
)
def test_only_what_was_recorded_decides_and_unknown_is_hidden(
    flag: str, setting: bool, shown: bool
) -> None:
    with override_settings(TASKTRAIL={"SHOW_RESULT": setting}):
        record = dataclasses.replace(RECORD, show_result=flag)
        assert access.disclosure(access.Level.VIEWER, record).outcome is shown
        assert access.disclosure(access.Level.STAFF, record).outcome is True


def test_a_viewer_of_a_hidden_task_keeps_only_the_task() -> None:
    record = dataclasses.replace(RECORD, show_result=options.HIDDEN)
    shown = access.disclosure(access.Level.VIEWER, record)
    visible = access.redact(record, shown)
    assert (visible.result, visible.error, visible.args, visible.kwargs) == (None,) * 4
    assert (visible.worker, visible.worker_pid, visible.owner_id) == ("", None, None)
    assert (visible.state, visible.attempt, visible.name) == ("FAILURE", 2, "n")
    history = access.redact_history(HISTORY, shown)
    assert [t.worker for t in history] == ["", ""]
    assert [t.detail for t in history] == [{}, {"next_retry_at": "soon"}]


def test_a_viewer_of_a_shown_task_gets_error_messages_not_tracebacks() -> None:
    shown = access.disclosure(access.Level.VIEWER, RECORD)
    assert access.redact(RECORD, shown).error == TaskError("ValueError", "m", None)
    retry = access.redact_history(HISTORY, shown)[1].detail
    assert retry == {"error_type": "E", "error_message": "m", "next_retry_at": "soon"}


def test_staff_get_everything_and_nobody_gets_anything() -> None:
    staff = access.disclosure(access.Level.STAFF, RECORD)
    assert staff.everything and access.redact(RECORD, staff) == RECORD
    assert access.redact_history(HISTORY, staff) == HISTORY
    nobody = access.disclosure(access.Level.NONE, RECORD)
    assert not any(dataclasses.asdict(nobody).values())


def test_without_a_record_no_outcome_is_promised() -> None:
    assert access.disclosure(access.Level.VIEWER).outcome is False
    assert access.disclosure(access.Level.VIEWER).task is True
    assert access.disclosure(access.Level.STAFF).worker is True
