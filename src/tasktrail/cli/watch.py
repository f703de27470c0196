"""``tasktrail watch ID``: a live progress bar until the task ends.

Polls the store: one primary-key read per tick is cheap, and works the same on every
database without a notifier. Exits 0 on ``SUCCESS``, 1 on any other end, 2 if unknown.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from .. import states
from ..records import TaskRecord
from . import options
from .base import Output
from .status import describe_progress, known

NAME = "watch"
HELP = "Follow one task live until it ends; exit 0 on SUCCESS, 1 on another end, 2 if unknown."

_BAR = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_id", type=options.task_id, metavar="ID")
    parser.add_argument(
        "--interval", type=options.seconds, default=0.2, metavar="SECONDS", help="poll every (0.2)"
    )


def bar(record: TaskRecord) -> str:
    """``[#####.....] STATE done/total (percent) message``; full once it succeeded."""
    progress = record.progress
    percent = (progress.percent if progress else None) or 0.0
    if record.state == states.SUCCESS:
        percent = 100.0
    filled = round(_BAR * percent / 100)
    described = f" {describe_progress(record)}" if progress else ""
    return f"[{'#' * filled}{'.' * (_BAR - filled)}] {record.state}{described}"


def _ending(record: TaskRecord) -> str:
    if record.error is not None:
        return f"{record.state}: {record.error.type}: {record.error.message}\n"
    return f"{record.state}\n"


def run(options: Mapping[str, Any], out: Output) -> int:
    record = known(options["task_id"])
    # On a terminal the bar redraws in place; piped, each change is one line.
    redraw = "\r\x1b[K" if out.isatty() else ""
    shown = ""
    while True:
        line = bar(record)
        if line != shown:
            out.write(f"{redraw}{line}" + ("" if redraw else "\n"))
            out.flush()
            shown = line
        if record.ready:
            break
        time.sleep(options["interval"])
        # Through known(): a task deleted meanwhile ends the watch as unknown.
        record = known(record.id)
    out.write(("\n" if redraw else "") + _ending(record))
    return 0 if record.state == states.SUCCESS else 1
