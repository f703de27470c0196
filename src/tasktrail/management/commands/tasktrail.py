"""``manage.py tasktrail <subcommand>``: a thin shim over :mod:`tasktrail.cli`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasktrail import cli


class Command(BaseCommand):
    help = "Inspect and maintain tasktrail's records."

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_subcommands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # Subcommands end their own lines, and a progress bar must not get one.
        self.stdout.ending = ""
        try:
            status = cli.run(options, self.stdout)
        except cli.Failure as failure:
            raise CommandError(str(failure), returncode=failure.status) from None
        if status:
            # The subcommand has said why; this only carries its status out.
            raise CommandError(
                f"tasktrail {options['subcommand']}: exit status {status}", returncode=status
            )
