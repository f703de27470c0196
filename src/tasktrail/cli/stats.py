"""``tasktrail stats``: how many tasks reached each state lately."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from ..store import overview
from . import output
from .base import Output

NAME = "stats"
HELP = "Count tasks by state, updated in the last hour, day and week (capped scans)."


add_arguments = output.add_json_flag


def run(options: Mapping[str, Any], out: Output) -> int:
    counts = overview.counts(timezone.now())
    if options["json"]:
        output.write_json(out, {c.window: c.by_state for c in counts})
        return 0
    found = sorted({state for c in counts for state in c.by_state})
    rows: list[list[object]] = [
        [state, *(_number(c.by_state.get(state, 0), c.exact) for c in counts)] for state in found
    ]
    rows.append(["total", *(_number(c.total, c.exact) for c in counts)])
    output.write_table(out, ["STATE", *(f"LAST {c.window.upper()}" for c in counts)], rows)
    return 0


def _number(count: int, exact: bool) -> str:
    # A window with more tasks than one scan reads: the count of the latest ones.
    return str(count) if exact else f"{count}+"
