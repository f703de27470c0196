"""``tasktrail list``, ``stats`` and ``workers`` on real rows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tasktrail.store import workers
from tests.conftest import heartbeat_row

from .conftest import Run, recorded

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()


@pytest.fixture
def tasks() -> None:
    """Five tasks a minute apart (t0 oldest), and one from three days ago."""
    owner = User.objects.create(username="ada")
    for i in range(5):
        state = "FAILURE" if i % 2 else "SUCCESS"
        at = NOW - timedelta(minutes=5 - i)
        recorded(f"t{i}", state, at, name="app.mail", queue="q1", owner_id=owner.pk)
    recorded("old", "STARTED", NOW - timedelta(days=3), name="app.report", queue="q2")


def ids(printed: str) -> list[str]:
    return [line.split()[0] for line in printed.splitlines()[1:] if not line.startswith("More")]


@pytest.mark.usefixtures("tasks")
def test_list_is_newest_first_and_pages_by_cursor(tasktrail: Run) -> None:
    first = tasktrail("list", "--limit", "2")
    assert ids(first) == ["t4", "t3"]
    assert first.splitlines()[0].split() == ["ID", "NAME", "STATE", "QUEUE", "PROGRESS", "UPDATED"]
    cursor = first.splitlines()[-1].removeprefix("More: --after ")
    second = json.loads(tasktrail("list", "--limit", "3", "--after", cursor, "--json"))
    assert [t["id"] for t in second["tasks"]] == ["t2", "t1", "t0"]
    third = json.loads(tasktrail("list", "--limit", "3", "--after", second["next"], "--json"))
    assert third == {"tasks": [third["tasks"][0]], "next": None}
    assert third["tasks"][0]["id"] == "old"


@pytest.mark.usefixtures("tasks")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--state", "failure"), ["t3", "t1"]),
        (("--name", "app.report"), ["old"]),
        (("--queue", "q2"), ["old"]),
        (("--owner", "ada", "--state", "SUCCESS"), ["t4", "t2", "t0"]),
        (("--since", "1d"), ["t4", "t3", "t2", "t1", "t0"]),
        (("--until", "1d"), ["old"]),
    ],
)
def test_list_filters(tasktrail: Run, args: tuple[str, ...], expected: list[str]) -> None:
    assert ids(tasktrail("list", *args)) == expected


@pytest.mark.usefixtures("tasks")
def test_stats_counts_by_state_per_window(tasktrail: Run) -> None:
    assert json.loads(tasktrail("stats", "--json")) == {
        "hour": {"FAILURE": 2, "SUCCESS": 3},
        "day": {"FAILURE": 2, "SUCCESS": 3},
        "week": {"FAILURE": 2, "STARTED": 1, "SUCCESS": 3},
    }
    assert tasktrail("stats").splitlines() == [
        "STATE    LAST HOUR  LAST DAY  LAST WEEK",
        "FAILURE  2          2         2",
        "STARTED  0          0         1",
        "SUCCESS  3          3         3",
        "total    5          5         6",
    ]


def test_workers_tells_alive_silent_and_stopped(tasktrail: Run) -> None:
    later = timezone.now() + timedelta(hours=1)  # alive when the command runs
    heartbeat_row("alive@h", 10, NOW, NOW, later, active=2, reserved=1)
    heartbeat_row("silent@h", 11, NOW, NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), 1, 0)
    heartbeat_row("stopped@h", 12, NOW, NOW, later, 0, 0)
    workers.stop("stopped@h", 12)
    table = tasktrail("workers").splitlines()
    header = "HOSTNAME PID STARTED LAST SEEN ACTIVE RESERVED STATUS"
    assert table[0].split() == header.split()
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["alive@h"][-3:] == ["2", "1", "alive"]
    assert rows["silent@h"][-1] == "silent"
    assert rows["stopped@h"][-1] == "stopped"
    found = {w["hostname"]: w for w in json.loads(tasktrail("workers", "--json"))}
    assert found["alive@h"]["pid"] == 10
    assert found["silent@h"]["status"] == "silent"


def test_empty_store(tasktrail: Run) -> None:
    assert tasktrail("list") == "ID  NAME  STATE  QUEUE  PROGRESS  UPDATED\n"
    assert json.loads(tasktrail("workers", "--json")) == []
