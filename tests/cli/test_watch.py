"""``tasktrail watch``: follows a task another thread is running, exits with its outcome."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from .conftest import Run, recorded

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_background(task_id: str, outcome: str) -> threading.Thread:
    """Like a worker: STARTED, two PROGRESS steps, then ``outcome``, a little apart."""

    def work() -> None:
        try:
            for done in (1, 3):
                time.sleep(0.3)
                recorded(
                    task_id,
                    "PROGRESS",
                    timezone.now(),
                    progress_current=done,
                    progress_total=4,
                    progress_message=f"row {done}",
                )
            time.sleep(0.3)
            error = {"error_type": "OSError", "error_message": "disk full"}
            recorded(task_id, outcome, timezone.now(), **({} if outcome == "SUCCESS" else error))
        finally:
            connection.close()

    recorded(task_id, "STARTED", timezone.now() - timedelta(seconds=1), name="app.import")
    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.fixture
def joined() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(5)


def test_watch_shows_progress_until_success(tasktrail: Run, joined: list[threading.Thread]) -> None:
    joined.append(run_in_background("w-ok", "SUCCESS"))
    lines = tasktrail("watch", "w-ok", "--interval", "0.05").splitlines()
    assert lines == [
        "[..............................] STARTED",
        "[########......................] PROGRESS 1/4 (25%) row 1",
        "[######################........] PROGRESS 3/4 (75%) row 3",
        "[##############################] SUCCESS 3/4 (75%) row 3",
        "SUCCESS",
    ]


def test_watch_exits_1_on_failure(joined: list[threading.Thread]) -> None:
    joined.append(run_in_background("w-bad", "FAILURE"))
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("tasktrail", "watch", "w-bad", "--interval", "0.05", stdout=out)
    assert raised.value.returncode == 1
    assert out.getvalue().endswith("FAILURE: OSError: disk full\n")


def test_watch_exits_2_on_an_unknown_id(tasktrail: Run) -> None:
    with pytest.raises(CommandError, match="unknown task id") as raised:
        tasktrail("watch", "never-sent")
    assert raised.value.returncode == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_redraws_in_place(joined: list[threading.Thread]) -> None:
    joined.append(run_in_background("w-tty", "SUCCESS"))
    screen = Terminal()
    call_command("tasktrail", "watch", "w-tty", "--interval", "0.05", stdout=screen)
    assert screen.getvalue().count("\n") == 2
    assert screen.getvalue().endswith(
        "\r\x1b[K[##############################] SUCCESS 3/4 (75%) row 3\nSUCCESS\n"
    )
