"""``tasktrail list``: recent tasks, filtered, newest first, one page at a time."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from .. import inputs
from ..records import TaskRecord
from ..store import queries
from . import options, output
from .base import Failure, Output
from .status import describe_progress, shown

NAME = "list"
HELP = "List tasks, most recently updated first; --after continues where a page ended."


def _format_cursor(cursor: queries.Cursor | None) -> str | None:
    return None if cursor is None else queries.format_cursor(cursor)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=options.state, help="e.g. FAILURE")
    parser.add_argument("--name", help="any part of the name, any case (slow_task, reports.)")
    parser.add_argument("--queue", help="any part of the queue's name")
    parser.add_argument("--owner", metavar="USER", help="a username or user id")
    parser.add_argument("--since", type=options.when, help="updated at or after (ISO or 2h)")
    parser.add_argument("--until", type=options.when, help="updated before (ISO or 2h)")
    parser.add_argument("--limit", type=options.limit, default=50, help="default 50")
    parser.add_argument("--after", type=options.cursor, metavar="CURSOR", help="the next page")
    output.add_json_flag(parser)


def _owner_id(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return inputs.user(text)
    except inputs.Refused as refused:
        raise Failure(str(refused)) from None


def _filter(options: Mapping[str, Any]) -> queries.TaskFilter:
    return queries.TaskFilter(
        state=options["state"],
        name=options["name"],
        queue=options["queue"],
        owner_id=_owner_id(options["owner"]),
        since=options["since"],
        until=options["until"],
    )


def run(options: Mapping[str, Any], out: Output) -> int:
    page = queries.page(_filter(options), options["limit"], options["after"])
    tasks = [shown(t) for t in page.tasks]
    cursor = _format_cursor(page.next)
    if options["json"]:
        output.write_json(out, {"tasks": [_json(t) for t in tasks], "next": cursor})
        return 0
    output.write_table(
        out,
        ("ID", "NAME", "STATE", "QUEUE", "PROGRESS", "UPDATED"),
        [
            (t.id, t.name, t.state, t.queue, describe_progress(t), output.moment(t.updated_at))
            for t in tasks
        ],
    )
    if cursor is not None:
        out.write(f"More: --after {cursor}\n")
    return 0


def _json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "state": task.state,
        "queue": task.queue,
        "owner_id": task.owner_id,
        "attempt": task.attempt,
        "progress": describe_progress(task) if task.progress else None,
        "updated_at": task.updated_at,
    }
