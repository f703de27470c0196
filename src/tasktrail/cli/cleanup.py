"""``tasktrail cleanup``: delete expired records now, in small batches."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from .. import services
from ..store.expiry import MAX_BATCH, Expired
from .base import Output
from .options import bounded

NAME = "cleanup"
HELP = (
    "Delete expired task records (with their history), expired groups, long-gone workers "
    "and stale revocations, in small batches. Workers also do this by themselves."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    parser.add_argument(
        "--batch",
        type=bounded(MAX_BATCH),
        default=None,
        metavar="N",
        help=f"tasks deleted per statement, at most {MAX_BATCH:,} "
        "(default: TASKTRAIL['CLEANUP_BATCH'])",
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def describe(expired: Expired) -> str:
    return (
        f"{_plural(expired.tasks, 'expired task')} (with their history), "
        f"{_plural(expired.groups, 'group')}, {_plural(expired.workers, 'gone worker')}, "
        f"{_plural(expired.revocations, 'stale revocation')}"
    )


def run(options: Mapping[str, Any], out: Output) -> int:
    started = time.monotonic()
    expired = services.cleanup(dry_run=options["dry_run"], batch=options["batch"])
    if options["dry_run"]:
        out.write(f"Would delete {describe(expired)}.\n")
    else:
        out.write(f"Deleted {describe(expired)} in {time.monotonic() - started:.1f} s.\n")
    return 0
