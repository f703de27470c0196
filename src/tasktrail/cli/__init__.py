"""tasktrail's command line: one argparse parser, shared by ``manage.py tasktrail``
and any console script.

A subcommand is a module of this package with ``NAME``, ``HELP``, ``add_arguments`` and
``run`` (see :class:`~tasktrail.cli.base.Command`); adding one means writing the module
and listing it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from . import cleanup, listing, stats, status, watch, workers
from .base import Command, Failure, Output

__all__ = ["COMMANDS", "Failure", "add_subcommands", "run"]

COMMANDS: tuple[Command, ...] = (status, listing, watch, stats, workers, cleanup)


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    subcommands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for command in COMMANDS:
        sub = subcommands.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)


def run(options: Mapping[str, Any], out: Output) -> int:
    """Run the subcommand that parsing ``options`` selected; return its exit status.

    Raises :class:`Failure` when it cannot do what was asked.
    """
    return int(options["run"](options, out))
