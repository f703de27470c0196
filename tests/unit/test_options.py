"""The registry of task options and headers, and the system check that names a mistyped one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import current_app
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tasktrail import checks, options
from tests.docs.pages import DOCS

pytestmark = pytest.mark.django_db


@pytest.fixture
def define() -> Iterator[Callable[..., Any]]:
    """``define(name, **task_options)``: a real task on the current app, gone afterwards."""
    names: list[str] = []

    def task(name: str, **task_options: Any) -> Any:
        names.append(name)

        def run() -> None:
            return None

        return current_app.task(name=name, shared=False, **task_options)(run)

    yield task
    for name in names:
        current_app.tasks.pop(name, None)


def _ours(messages: list[Any]) -> list[Any]:
    return [m for m in messages if m.id.startswith("tasktrail.E00") and m.id != "tasktrail.E001"]


def test_the_tasks_of_this_suite_pass_the_check() -> None:
    assert _ours(checks.check_task_options()) == []


def test_a_mistyped_option_is_named_with_the_closest_known_one(
    define: Callable[..., Any],
) -> None:
    define("tests.unit.typo", tasktrail_retries=3)
    found = _ours(checks.check_task_options())
    assert [(m.id, m.obj) for m in found] == [("tasktrail.E003", "tests.unit.typo")]
    assert "tasktrail_retries" in found[0].msg
    assert "did you mean tasktrail_retry?" in found[0].msg
    # And `manage.py check` (run before migrate and by runserver) refuses it.
    with pytest.raises(SystemCheckError, match="tasktrail_retries"):
        call_command("check")


def test_an_option_on_a_task_class_is_checked_too(define: Callable[..., Any]) -> None:
    class Base(current_app.Task):  # type: ignore[misc,name-defined]
        abstract = True
        tasktrail_show_results = False

    define("tests.unit.typo_in_base", base=Base)
    found = _ours(checks.check_task_options())
    assert [m.id for m in found] == ["tasktrail.E003"]
    assert "did you mean tasktrail_show_result?" in found[0].msg


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("tasktrail_show_result", "no", "must be True or False"),
        ("tasktrail_result_expires", "1 day", "is not a duration"),
        ("tasktrail_failure_expires", -5, "must not be negative"),
        ("tasktrail_retry", {"max_attempt": 3}, "unknown retry option"),
    ],
)
def test_a_value_tasktrail_cannot_read_is_named(
    define: Callable[..., Any], option: str, value: Any, says: str
) -> None:
    define("tests.unit.bad_value", **{option: value})
    found = _ours(checks.check_task_options())
    assert [(m.id, m.obj) for m in found] == [("tasktrail.E004", "tests.unit.bad_value")]
    assert option in found[0].msg and says in found[0].msg


def test_every_option_has_a_check_of_its_value() -> None:
    assert set(checks._VALIDATORS) == set(options.TASK_OPTIONS)


def test_the_documented_task_options_are_the_registry() -> None:
    text = (DOCS / "reference" / "settings.md").read_text()
    section = text[text.index("## Task options") : text.index("## Celery settings")]
    rows = dict(re.findall(r"^\| `(tasktrail_\w+)` \| (.+) \|$", section, re.M))
    assert rows == options.TASK_OPTIONS


@pytest.mark.parametrize(
    ("value", "recorded"),
    [
        (True, options.SHOWN),
        (False, options.HIDDEN),
        (None, options.DEFAULT),
        ("yes", options.HIDDEN),  # mistyped: hidden, not shown
        (1, options.HIDDEN),
    ],
)
def test_what_is_recorded_for_a_task(define: Callable[..., Any], value: Any, recorded: str) -> None:
    extra = {} if value is None else {options.SHOW_RESULT: value}
    assert options.show_result(define("tests.unit.flag", **extra)) == recorded
    assert options.show_result(None) == options.UNKNOWN


@pytest.mark.django_db(transaction=True)
def test_once_a_process_records_hidden_the_task_stays_hidden() -> None:
    """A sender running an older release (no option yet) must not outvote the worker."""
    from tasktrail.store import get
    from tests.conftest import recorded

    recorded("skew-1", "PENDING", show_result=options.DEFAULT)
    recorded("skew-1", "STARTED", show_result=options.HIDDEN)
    assert get("skew-1").show_result == options.HIDDEN
    recorded("skew-1", "SUCCESS", show_result=options.SHOWN)
    assert get("skew-1").show_result == options.HIDDEN
    recorded("skew-2", "PENDING", show_result=options.UNKNOWN)
    recorded("skew-2", "STARTED", show_result=options.SHOWN)
    recorded("skew-2", "SUCCESS", show_result=options.DEFAULT)
    assert get("skew-2").show_result == options.SHOWN
