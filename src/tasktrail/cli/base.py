"""What a subcommand is, and where it writes."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Protocol


class Output(Protocol):
    """Where a subcommand writes: a text stream, or Django's ``OutputWrapper``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...

    def isatty(self) -> bool: ...


class Failure(Exception):
    """A subcommand cannot do what was asked: ``message`` for the operator, exit ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, options: Mapping[str, Any], out: Output) -> int: ...
