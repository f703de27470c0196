"""The reference pages match the code: settings and their defaults, JSON keys, CLI output."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tasktrail import access, conf, store
from tasktrail.management.commands.tasktrail import Command

from .pages import DOCS, ROOT, all_blocks, pages

pytestmark = pytest.mark.django_db(transaction=True)


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("day", 86400), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''}"
    return f"{round(seconds * 1000)} ms"


def documented_default(value: Any) -> str:
    """How settings.md writes a default: what its Default cell starts with."""
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, frozenset):
        return ", ".join(f"`{v}`" for v in sorted(value))
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def test_settings_table_matches_conf() -> None:
    rows = {}
    for line in (DOCS / "reference" / "settings.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[A-Z_]+`", cells[0]):
            assert cells[0] not in rows, f"{cells[0]} is documented twice"
            rows[cells[0].strip("`")] = cells[1]
    fields = {f.name: f.default for f in dataclasses.fields(conf.Settings)}
    assert sorted(rows) == sorted(fields), "settings.md lists other settings than conf.py"
    for name, default in fields.items():
        assert rows[name].startswith(documented_default(default)), (
            f"settings.md: {name} defaults to {documented_default(default)}, not {rows[name]}"
        )


def _settings_rows(text: str) -> list[str]:
    """Keys of ``TASKTRAIL`` in the first column of a table with a default column."""
    keys = {f.name for f in dataclasses.fields(conf.Settings)}
    found: list[str] = []
    table: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            table.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
            continue
        if table and any("default" in cell.lower() for cell in table[0]):
            found += [row[0] for row in table[1:] if row[0] in keys]
        table = []
    return found


def test_settings_have_one_reference() -> None:
    """Only settings.md tables the settings; the README points to it (a second table
    is a second copy that drifts: the README's once missed RECEIVED_AFTER, RETRY, ...)."""
    readme = (ROOT / "README.md").read_text()
    assert "(docs/reference/settings.md)" in readme, "README.md does not link the reference"
    assert not _settings_rows(readme), "README.md tables settings: link settings.md instead"
    for page in pages():
        if page != "reference/settings.md":
            rows = _settings_rows((DOCS / page).read_text())
            assert not rows, f"docs/{page} tables settings {rows}: link settings.md instead"


EAGER_TASKS = ("tests.testapp.tasks.boom", "tests.testapp.tasks.reports_progress")


def _app() -> Any:
    """The tasks' own app, with them registered: a shared task resolves through the
    current app, which another test may have changed."""
    from tests.testapp import tasks
    from tests.testapp.celeryapp import app

    assert tasks.boom.name in app.tasks
    return app


def _task(failing: bool = False) -> str:
    task = _app().tasks[EAGER_TASKS[0 if failing else 1]]
    result = task.apply(args=("disk full",) if failing else (2, 0.0))
    store.sync()
    return result.id


@pytest.fixture
def eager_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # On the tasks themselves: Celery copies task_store_eager_result into each task
    # when the app binds it, which another test may already have made happen.
    for name in EAGER_TASKS:
        monkeypatch.setattr(_app().tasks[name], "store_eager_result", True)


@pytest.mark.usefixtures("eager_store")
def test_status_json_keys_match_the_code() -> None:
    real = {
        "viewer": set(access.snapshot(store.get(_task()), access.Level.VIEWER)),
        "staff": set(access.snapshot(store.get(_task(failing=True)), access.Level.STAFF)),
    }
    blocks = [b for b in all_blocks("json") if b.kind == "json"]
    assert blocks
    for block in blocks:
        _, level = block.arg.split()
        assert set(json.loads(block.code)) == real[level], block.where


def test_json_samples_parse() -> None:
    for block in all_blocks("json"):
        json.loads(block.code)


def _commands() -> list[tuple[str, list[str], str]]:
    """Each ``$ python manage.py tasktrail ...`` line of a console sample, and its output."""
    found = []
    for block in all_blocks("console"):
        lines = block.code.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ python manage.py tasktrail "):
                command = line.removeprefix("$ ").split(";")[0].split("  #")[0]
                output = []
                for rest in lines[i + 1 :]:
                    if rest.startswith("$ "):
                        break
                    output.append(rest)
                found.append((block.where, shlex.split(command)[3:], "\n".join(output)))
    return found


def test_documented_command_lines_parse() -> None:
    parser = Command().create_parser("manage.py", "tasktrail")
    for where, argv, output in _commands():
        if argv[0] == "SUBCOMMAND":
            continue
        try:
            parser.parse_args(argv)
        except (CommandError, SystemExit):
            assert "error:" in output, f"{where}: {argv} does not parse"


def _shape(output: str, subcommand: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    if subcommand == "status":
        return [re.split(r"\s{2,}", line)[0] for line in lines[:16]]
    if subcommand in {"list", "stats", "workers"}:
        return lines[0].split()
    return lines[0].split()[:1]


def _is_error(output: str) -> bool:
    """A transcript of a refused command (its message is checked by tests/cli)."""
    return output.startswith(("CommandError:", "usage:"))


@pytest.mark.usefixtures("eager_store")
def test_cli_output_has_the_documented_shape() -> None:
    ids = {"SUCCESS": _task(), "FAILURE": _task(failing=True)}
    checked = 0
    for where, argv, output in _commands():
        if "--json" in argv or _is_error(output) or argv[0] in {"SUBCOMMAND", "watch"}:
            continue
        if argv[0] == "status":
            argv = ["status", ids["FAILURE" if "FAILURE (done)" in output else "SUCCESS"]]
        out = io.StringIO()
        call_command("tasktrail", *argv, stdout=out)  # a refused command fails the test
        assert _shape(out.getvalue(), argv[0]) == _shape(output, argv[0]), where
        checked += 1
    assert checked >= 10
