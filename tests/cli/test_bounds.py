"""Numbers, ages, dates, cursors and users past what the databases store are refused
with the reason (exit 2), never a traceback; the last values inside still work.

Run on SQLite and PostgreSQL (``TT_DB=postgres``): SQLite overflows converting far
dates to UTC and big integers to its ``INTEGER``, PostgreSQL refuses past ``bigint``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError
from django.db import connection

from .conftest import Run, recorded

pytestmark = pytest.mark.django_db(transaction=True)

BIG = "1" + "0" * 40
REFUSED = [
    (("list", "--since", "999999999w"), "reaches back past"),
    (("list", "--since", "9999999d"), "reaches back past"),
    (("list", "--until", "99999999999999999999999999s"), "reaches back past"),
    (("list", "--since", "9" * 5000 + "s"), "reaches back past"),
    (("list", "--limit", "1e20"), "whole number from 1"),
    (("list", "--limit", "100000000000000000000"), "whole number from 1"),
    (("list", "--limit", str(2**63 - 1)), "whole number from 1"),
    (("list", "--limit", "9" * 5000), "whole number from 1"),
    (("cleanup", "--batch", "1e20"), "whole number from 1"),
    (("cleanup", "--batch", "100000000000000000000"), "whole number from 1"),
    (("cleanup", "--batch", "32001"), "whole number from 1 to 32,000"),
    (("list", "--until", "9999-12-31T23:59:59"), "out of range"),
    (("list", "--until", "9999-12-31T23:59:59-14:00"), "out of range"),
    (("list", "--since", "0001-01-01T00:00:00+14:00"), "out of range"),
    (("list", "--since", "0001-01-01"), "out of range"),
    (("list", "--after", "9999-12-31T23:59:59+00:00,t1"), "bad cursor"),
    (("list", "--after", "9999-12-31T23:59:59.999999-14:00,t1"), "bad cursor"),
    (("list", "--after", "0001-01-01T00:00:00+14:00,t1"), "bad cursor"),
    (("list", "--after", "2026-01-01T00:00:00+00:00," + "x" * 256), "bad cursor"),
    (("list", "--owner", BIG), "unknown user"),
    (("list", "--owner", str(2**63)), "unknown user"),
    (("list", "--owner", "²"), "unknown user"),
    (("watch", "t1", "--interval", "1e10"), "at most 86400"),
    (("watch", "t1", "--interval", "nan"), "number of seconds"),
]


@pytest.mark.parametrize(("args", "reason"), REFUSED, ids=lambda v: str(v)[:40])
def test_a_value_no_database_stores_is_refused_with_the_reason(
    tasktrail: Run, args: tuple[str, ...], reason: str
) -> None:
    recorded("t1", "SUCCESS")
    with pytest.raises(CommandError, match=reason):
        tasktrail(*args)


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--since", "0001-01-02T00:00:00+00:00"),
        ("list", "--until", "9999-12-30T00:00:00+00:00"),
        ("list", "--after", "9999-12-30T00:00:00+00:00,t1"),
        ("list", "--since", "52w"),
        ("list", "--limit", str(2**63 - 2)),
        ("list", "--owner", str(2**63 - 1)),
        ("cleanup", "--batch", "32000"),
    ],
    ids=lambda v: " ".join(v)[:40],
)
def test_the_last_values_inside_work(tasktrail: Run, args: tuple[str, ...]) -> None:
    recorded("t1", "SUCCESS")
    tasktrail(*args)


def test_a_numeric_username_still_names_its_user(tasktrail: Run) -> None:
    user = User.objects.create(username=BIG)
    recorded("mine", "SUCCESS", owner_id=user.pk)
    assert "mine" in tasktrail("list", "--owner", BIG)


def test_from_a_shell_refusals_exit_2_without_a_traceback() -> None:
    database = connection.settings_dict["NAME"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TT_DB_NAME": database}
    command = [sys.executable, "-m", "django", "tasktrail"]
    for args in (("list", "--since", "999999999w"), ("list", "--owner", BIG)):
        done = subprocess.run([*command, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
