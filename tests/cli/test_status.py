"""``tasktrail status`` and the command's handling of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import CommandError
from django.db import connection
from django.utils import timezone

from .conftest import Run, recorded

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()


@pytest.fixture
def failed() -> str:
    recorded("t-fail", "STARTED", NOW - timedelta(seconds=5), name="app.export", queue="slow")
    recorded(
        "t-fail",
        "FAILURE",
        NOW,
        error_type="ValueError",
        error_message="bad row 7",
        traceback="Traceback (most recent call last):\nValueError: bad row 7\n",
    )
    return "t-fail"


def test_status_prints_the_record_and_its_traceback(tasktrail: Run, failed: str) -> None:
    printed = tasktrail("status", failed)
    assert "state         FAILURE (done)\n" in printed
    assert "name          app.export\n" in printed
    assert "error         ValueError: bad row 7\n" in printed
    assert printed.endswith("Traceback (most recent call last):\nValueError: bad row 7\n")


def test_status_as_json(tasktrail: Run, failed: str) -> None:
    data = json.loads(tasktrail("status", failed, "--json"))
    assert data["state"] == "FAILURE"
    assert data["error"] == {
        "type": "ValueError",
        "message": "bad row 7",
        "traceback": "Traceback (most recent call last):\nValueError: bad row 7\n",
    }


def test_an_unknown_id_exits_2_with_a_clear_message(tasktrail: Run) -> None:
    with pytest.raises(CommandError, match="unknown task id 'nope'") as raised:
        tasktrail("status", "nope")
    assert raised.value.returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "x\ud800"), "malformed task id"),
        (("status", "x" * 256), "malformed task id"),
        (("list", "--state", "not a state"), "invalid task state"),
        (("list", "--since", "yesterday-ish"), "bad date"),
        (("list", "--limit", "0"), "whole number from 1 to"),
        (("list", "--after", "garbage"), "bad cursor"),
        (("watch", "x", "--interval", "-1"), "number of seconds above 0"),
    ],
)
def test_bad_input_is_refused_clearly(tasktrail: Run, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        tasktrail(*args)


def test_from_a_shell(failed: str) -> None:
    # The child process must open the test database, not the one the settings name.
    database = connection.settings_dict["NAME"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TT_DB_NAME": database}
    command = [sys.executable, "-m", "django", "tasktrail", "status"]
    found = subprocess.run([*command, failed], env=env, capture_output=True, text=True)
    assert found.returncode == 0
    assert "FAILURE (done)" in found.stdout
    unknown = subprocess.run([*command, "nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2
    assert "unknown task id 'nope'" in unknown.stderr
