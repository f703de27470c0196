"""Read the documentation's pages: their fenced code blocks and the test directive of each.

A directive is an HTML comment on the line before a fence (invisible on the site):

``<!-- docs-test: settings -->``
    Settings: run in a namespace holding ``INSTALLED_APPS``, ``MIDDLEWARE`` and
    ``BASE_DIR``, then ``TASKTRAIL`` goes through tasktrail's own settings parser and
    every ``CELERY_*`` name must be a Celery setting.
``<!-- docs-test: module myapp.tasks -->``
    The block is the module ``myapp.tasks``, a file of the reader's project (on a
    tutorial page, the project holds the earlier pages' modules too): later blocks of
    the page import it, and so does the worker started for a page that sends tasks.
``<!-- docs-test: file example/exampleproject/celery.py myproject=exampleproject -->``
    Every code line of the block (with the renames applied) is a line of that file.
``<!-- docs-test: skip <reason> -->``
    Not run, for the reason given (a transcript of a run elsewhere, a fragment).

Without a directive a ``python`` block runs in the page's namespace (blocks run in
order and share it) and a ``pycon`` block is a doctest in that namespace.

A block that is a file of the reader's project names it on its first line, so a reader
knows where to paste it and tests/acceptance/test_newcomer.py can build the project from
the pages: ``# file: myapp/tasks.py`` (the whole file; ``{# file: ... #}`` in a template)
or ``# file: myproject/settings.py (append)`` (added at its end).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<lang>[\w+-]*)(?P<attrs>.*)$")
_TARGET = re.compile(r"^(?:#|\{#)\s*file:\s*(?P<path>\S+)(?P<append>\s+\(append\))?\s*(?:#\})?$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    kind: str  # "" when the block has no directive
    arg: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    @property
    def target(self) -> Target | None:
        """The project file the block is, from its ``# file:`` first line."""
        found = _TARGET.match(self.code.split("\n", 1)[0].strip())
        return Target(found["path"], bool(found["append"])) if found else None


@dataclasses.dataclass(frozen=True)
class Target:
    path: str  # relative to the project's root, where manage.py is
    append: bool  # added at the end of the file rather than the whole file


def pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


def blocks(page: str) -> Iterator[Block]:
    lines = (DOCS / page).read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        directive = _DIRECTIVE.match(lines[i - 1]) if i > 0 else None
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        yield Block(
            page=page,
            line=i + 1,
            lang=opening["lang"],
            code="\n".join(body) + "\n",
            kind=directive["kind"] if directive else "",
            arg=directive["arg"] if directive else "",
        )
        i = j + 1


def tutorial() -> list[str]:
    """The tutorial's pages in the order its index lists them: each builds on the ones
    before, in the same project."""
    index = (DOCS / "tutorial" / "index.md").read_text()
    return ["tutorial/index.md"] + [
        f"tutorial/{name}" for name in dict.fromkeys(re.findall(r"\]\((\w+\.md)\)", index))
    ]


def all_blocks(*langs: str) -> list[Block]:
    return [b for page in pages() for b in blocks(page) if not langs or b.lang in langs]
