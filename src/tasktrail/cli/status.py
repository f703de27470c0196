"""``tasktrail status ID``: one task's record, as an operator (staff) sees it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from .. import access, states, store
from ..exceptions import TaskNotFound
from ..records import TaskRecord
from . import options, output
from .base import Failure, Output

#: Who runs the CLI: someone holding the database's credentials, so staff. Every
#: command shows a task as :func:`tasktrail.access.disclosure` allows this level.
LEVEL = access.Level.STAFF
NAME = "status"
HELP = "Show one task's state, progress, result or error. Exits 2 for an unknown id."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_id", type=options.task_id, metavar="ID")
    output.add_json_flag(parser)


def known(task_id: str) -> TaskRecord:
    """The record of ``task_id`` as :data:`LEVEL` sees it, or the failure an operator
    should see."""
    try:
        record = store.get(task_id)
    except TaskNotFound:
        raise Failure(f"unknown task id {task_id!r}: tasktrail has no record of it") from None
    return shown(record)


def shown(record: TaskRecord) -> TaskRecord:
    return access.redact(record, access.disclosure(LEVEL, record))


def describe_progress(record: TaskRecord) -> str:
    return "-" if record.progress is None else str(record.progress)


def _fields(record: TaskRecord) -> list[tuple[str, object]]:
    error = record.error
    return [
        ("id", record.id),
        ("name", record.name or "-"),
        ("state", f"{record.state} ({record.phase})"),
        ("queue", record.queue or "-"),
        ("attempt", record.attempt),
        ("retries left", "-" if record.retries_left is None else record.retries_left),
        ("progress", describe_progress(record)),
        ("worker", f"{record.worker} (pid {record.worker_pid})" if record.worker else "-"),
        ("owner", "-" if record.owner_id is None else record.owner_id),
        ("sent", output.moment(record.sent_at)),
        ("started", output.moment(record.started_at)),
        ("finished", output.moment(record.finished_at)),
        ("updated", output.moment(record.updated_at)),
        ("next retry", output.moment(record.next_retry_at)),
        ("result", repr(record.result) if record.state == states.SUCCESS else "-"),
        ("error", "-" if error is None else f"{error.type}: {error.message}"),
    ]


def run(options: Mapping[str, Any], out: Output) -> int:
    record = known(options["task_id"])
    if options["json"]:
        output.write_json(out, access.snapshot(record, LEVEL))
        return 0
    fields = _fields(record)
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        out.write(f"{label.ljust(width)}  {value}\n")
    if record.error is not None and record.error.traceback:
        out.write("\n" + record.error.traceback.rstrip() + "\n")
    return 0
