"""``tasktrail stats``: how many tasks reached each state lately."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from ..store import queries
from . import output
from .base import Output

NAME = "stats"
HELP = "Count tasks by state, updated in the last hour, day and week."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    output.add_json_flag(parser)


def run(options: Mapping[str, Any], out: Output) -> int:
    counts = queries.counts(timezone.now())
    if options["json"]:
        output.write_json(out, counts)
        return 0
    windows = list(queries.WINDOWS)
    found = sorted({state for by_state in counts.values() for state in by_state})
    rows: list[list[object]] = [
        [state, *(counts[w].get(state, 0) for w in windows)] for state in found
    ]
    rows.append(["total", *(sum(counts[w].values()) for w in windows)])
    output.write_table(out, ["STATE", *(f"LAST {w.upper()}" for w in windows)], rows)
    return 0
