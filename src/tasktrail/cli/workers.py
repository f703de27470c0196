"""``tasktrail workers``: the workers' heartbeats, and which of them went silent."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from ..store import queries
from . import output
from .base import Output

NAME = "workers"
HELP = "List workers from their heartbeats: alive, silent (no heartbeat lately) or stopped."


add_arguments = output.add_json_flag


def run(options: Mapping[str, Any], out: Output) -> int:
    found = queries.workers(timezone.now())
    if options["json"]:
        output.write_json(out, [dataclasses.asdict(w) | {"status": w.status} for w in found])
        return 0
    output.write_table(
        out,
        ("HOSTNAME", "PID", "STARTED", "LAST SEEN", "ACTIVE", "RESERVED", "STATUS"),
        [
            (
                w.hostname,
                w.pid,
                output.moment(w.started_at),
                output.moment(w.last_seen),
                w.active,
                w.reserved,
                w.status,
            )
            for w in found
        ],
    )
    return 0
