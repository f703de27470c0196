"""Argument types shared by subcommands: each rejects bad input with a clear message.

The rules are :mod:`tasktrail.inputs`, which the dashboard's filters share; here they
only become argparse's errors (``Error: argument --since: ...``, exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import inputs, states
from ..store import queries

#: Longest poll interval ``watch`` takes: a day (``time.sleep`` overflows past about
#: 9.2e9 s, and no one watches a task once a year).
MAX_INTERVAL = 86_400.0


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except inputs.Refused as refused:
            raise argparse.ArgumentTypeError(str(refused)) from None

    convert.__name__ = parse.__name__
    return convert


def task_id(text: str) -> str:
    return str(_argument(inputs.task_id)(text))


def state(text: str) -> str:
    try:
        return states.validate(text.upper())
    except states.InvalidState as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def when(text: str) -> datetime:
    """An ISO date or datetime (local time unless it says), or an age such as ``90m``."""
    found: datetime = _argument(inputs.when)(text)
    return found


def bounded(high: int) -> Callable[[str], int]:
    """A whole number from 1 to ``high``."""

    def parse(text: str) -> int:
        return inputs.whole(text, high=high)

    convert: Callable[[str], int] = _argument(parse)
    return convert


#: A page size: a page asks for one row more than it shows.
limit = bounded(queries.BIGINT_MAX - 1)


def cursor(text: str) -> queries.Cursor:
    found: queries.Cursor = _argument(inputs.cursor)(text)
    return found


def seconds(text: str) -> float:
    found: float = _argument(lambda t: inputs.seconds(t, MAX_INTERVAL))(text)
    return found
