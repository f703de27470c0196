"""Every code sample of the documentation runs (see ``pages.py`` for the directives).

A page whose samples send tasks (``.delay(``, ``.apply_async(``, ``.enqueue(``) runs
them against a real Celery worker started for that page, with the page's own modules
(``module`` blocks, written to files the worker imports) on the Redis broker and the test
database: what a reader pasting the samples into ``manage.py shell`` sees, so a sample
that reads a record before its task has run fails here as it would there.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from celery.app.defaults import DEFAULTS
from django.template import engines

from tasktrail import conf
from tests import workers
from tests.conftest import require

from .pages import ROOT, Block, blocks, pages, tutorial

RUNNABLE = {"python", "pycon", "django"}
KINDS = {"", "settings", "module", "file", "skip", "json"}
#: Apps the tutorial has the reader create (``manage.py startapp myapp``).
READERS_APPS = {"myapp"}
#: A sample that sends a task to a worker.
_SENDS = re.compile(r"\.(delay|apply_async|enqueue|aenqueue)\(")
ARTIFACTS = ROOT / "artifacts" / "docs"


def needs_worker(page: str) -> bool:
    return any(
        b.lang in {"python", "pycon"} and b.kind == "" and _SENDS.search(b.code)
        for b in blocks(page)
    )


def _pages_with_samples() -> list[str]:
    return [p for p in pages() if any(b.lang in RUNNABLE for b in blocks(p))]


def test_every_directive_is_known() -> None:
    for page in pages():
        for block in blocks(page):
            assert block.kind in KINDS, f"{block.where}: unknown docs-test kind {block.kind!r}"
            if block.kind == "skip":
                assert block.arg, f"{block.where}: say why the sample is skipped"
            if block.kind == "module" and block.target:
                module_file = block.arg.replace(".", "/") + ".py"
                assert block.target.path == module_file, f"{block.where}: not {module_file}"
            if block.kind == "json":
                assert block.lang == "json", f"{block.where}: docs-test json on a non-JSON block"
            elif block.kind and block.lang not in RUNNABLE:
                pytest.fail(f"{block.where}: a docs-test directive on a {block.lang!r} block")


#: Modules the samples of the page being run created (``module`` directives).
_created: list[str] = []


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Path]:
    """The directory the page's modules are written to, on ``sys.path`` for the page;
    modules and tasks the page defines are forgotten after it."""
    tasks = set(current_app.tasks)
    root = tmp_path / "project"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    yield root
    sys.path.remove(str(root))
    while _created:
        sys.modules.pop(_created.pop(), None)
    for name in set(current_app.tasks) - tasks:
        current_app.tasks.pop(name)


def _module_path(root: Path, name: str) -> Path:
    return root.joinpath(*name.split(".")).with_suffix(".py")


def _project(page: str) -> list[Block]:
    """The ``module`` blocks that make the reader's project when ``page`` runs: on a
    tutorial page, those of the pages before it too (each builds on the last)."""
    order = tutorial()
    earlier = order[: order.index(page)] if page in order else []
    return [b for p in [*earlier, page] for b in blocks(p) if b.kind == "module"]


def write_modules(page: str, root: Path) -> list[str]:
    """Write the project's ``module`` blocks as files under ``root`` (packages get an
    ``__init__.py``), appended where the block says ``(append)``; the names of those
    defining tasks, for the worker to import."""
    names: list[str] = []
    for block in _project(page):
        path = _module_path(root, block.arg)
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(root).parents:
            if package != Path("."):
                (root / package / "__init__.py").touch()
        append = block.target is not None and block.target.append
        with path.open("a" if append else "w") as file:
            file.write(("\n\n" if append else "") + block.code)
        names.append(block.arg)
    return [
        name
        for name in dict.fromkeys(names)
        if "shared_task" in _module_path(root, name).read_text()
    ]


def _module(name: str) -> None:
    """Import the module as the reader's shell would, from the files written for the page."""
    for package in [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 2)]:
        if package not in sys.modules:
            _created.append(package)
    importlib.import_module(name)


def _settings(block: Block) -> None:
    namespace: dict[str, Any] = {
        "INSTALLED_APPS": ["django.contrib.auth"],
        "MIDDLEWARE": ["django.contrib.auth.middleware.AuthenticationMiddleware"],
        "BASE_DIR": Path("/srv/app"),
    }
    exec(compile(block.code, block.where, "exec"), namespace)
    if "TASKTRAIL" in namespace:
        conf.load(namespace["TASKTRAIL"])
    for name in namespace:
        if name.startswith("CELERY_"):
            key = name.removeprefix("CELERY_").lower()
            assert key in DEFAULTS, f"{block.where}: {name} is not a Celery setting"
    for dotted in [*namespace["INSTALLED_APPS"], *namespace["MIDDLEWARE"]]:
        if dotted in READERS_APPS:
            continue
        module, _, attr = dotted.rpartition(".")
        try:
            importlib.import_module(dotted)
        except ImportError:
            assert hasattr(importlib.import_module(module), attr), f"{block.where}: {dotted}"


def _same_as_file(block: Block) -> None:
    """``file PATH [old=new ...]``: each code line, renamed, is a line of PATH."""
    path, *renames = block.arg.split()
    text = {line.strip() for line in (ROOT / path).read_text().splitlines()}
    for line in block.code.splitlines():
        code = line.strip()
        for rename in renames:
            code = code.replace(*rename.split("=", 1))
        if code and not code.startswith("#"):
            assert code in text, f"{block.where}: {code!r} is not in {path}"


def _doctest(block: Block, namespace: dict[str, Any]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, block.where, block.where, block.line)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest ran in a copy
    assert not runner.failures, "".join(report)


def run_page(page: str, root: Path) -> dict[str, Any]:
    """Run the page's samples in order; its modules are already written under ``root``."""
    namespace: dict[str, Any] = {"__name__": "docs_" + page.removesuffix(".md").replace("/", "_")}
    for block in blocks(page):
        if block.lang not in RUNNABLE or block.kind == "skip":
            continue
        if block.lang == "django":
            engines["django"].from_string(block.code)
        elif block.kind == "settings":
            _settings(block)
        elif block.kind == "module":
            _module(block.arg)
        elif block.kind == "file":
            _same_as_file(block)
        elif block.lang == "pycon":
            _doctest(block, namespace)
        else:
            exec(compile(block.code, block.where, "exec"), namespace)
    return namespace


@contextlib.contextmanager
def page_worker(page: str, root: Path, modules: list[str]) -> Iterator[None]:
    """A real worker (prefork, one child) that imports the page's modules from ``root``."""
    from tests.testapp.celeryapp import app

    require("Redis", "127.0.0.1", 6379)
    hostname = f"docs-{uuid.uuid4().hex[:8]}@tests"
    log_path = ARTIFACTS / f"worker-{page.replace('/', '-').removesuffix('.md')}.log"
    # RECEIVED is written for a task that waited in the worker over RECEIVED_AFTER
    # (100 ms); the pages show the common path, which a loaded test machine would
    # otherwise leave now and then (the rule itself is tested in tests/integration).
    env = workers.environment(root, TT_RECEIVED_AFTER="30")
    # Celery tasks' modules; a page of django.tasks tasks has none to give (the runner
    # imports each task by its path, from PYTHONPATH), and an empty --include fails.
    include = [f"--include={','.join(modules)}"] if modules else []
    with workers.running(app, hostname, log_path, env, 1, include, destination=hostname):
        yield


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", _pages_with_samples())
def test_samples_run(page: str, isolated: Path) -> None:
    modules = write_modules(page, isolated)
    with page_worker(page, isolated, modules) if needs_worker(page) else contextlib.nullcontext():
        run_page(page, isolated)
