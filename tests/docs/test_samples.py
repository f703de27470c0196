"""Every code sample of the documentation runs (see ``pages.py`` for the directives).

Tasks run eagerly, in this process (``task_always_eager`` with the result stored), so
the samples read real records without a worker; the worker-side paths they rely on are
covered by ``tests/integration``.
"""

from __future__ import annotations

import doctest
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from celery.app.defaults import DEFAULTS
from django.template import engines

from tasktrail import conf

from .pages import ROOT, Block, blocks, pages

RUNNABLE = {"python", "pycon", "django"}
KINDS = {"", "settings", "module", "file", "skip", "json"}
EAGER = {"task_always_eager": True, "task_store_eager_result": True, "task_eager_propagates": False}


def _pages_with_samples() -> list[str]:
    return [p for p in pages() if any(b.lang in RUNNABLE for b in blocks(p))]


def test_every_directive_is_known() -> None:
    for page in pages():
        for block in blocks(page):
            assert block.kind in KINDS, f"{block.where}: unknown docs-test kind {block.kind!r}"
            if block.kind == "skip":
                assert block.arg, f"{block.where}: say why the sample is skipped"
            if block.kind == "json":
                assert block.lang == "json", f"{block.where}: docs-test json on a non-JSON block"
            elif block.kind and block.lang not in RUNNABLE:
                pytest.fail(f"{block.where}: a docs-test directive on a {block.lang!r} block")


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    config = current_app.conf
    saved = {key: config[key] for key in EAGER}
    config.update(EAGER)
    # Celery copies task_store_eager_result into a task when the app binds it, which an
    # earlier test may have made happen (django.tasks' runner, tasktrail.tasks.run).
    for task in current_app.tasks.values():
        monkeypatch.setattr(task, "store_eager_result", True)
    yield
    config.update(saved)


#: Modules the samples of the page being run created (``module`` directives).
_created: list[str] = []


@pytest.fixture
def isolated() -> Iterator[None]:
    """Modules and tasks a page defines are forgotten after it."""
    tasks = set(current_app.tasks)
    yield
    while _created:
        sys.modules.pop(_created.pop(), None)
    for name in set(current_app.tasks) - tasks:
        current_app.tasks.pop(name)


def _module(name: str, block: Block) -> None:
    parts = name.split(".")
    for k in range(1, len(parts)):
        package = ".".join(parts[:k])
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = []
            sys.modules[package] = module
            _created.append(package)
    module = types.ModuleType(name)
    module.__file__ = block.where
    module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    _created.append(name)
    if len(parts) > 1:
        setattr(sys.modules[module.__package__], parts[-1], module)
    exec(compile(block.code, block.where, "exec"), module.__dict__)


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


def run_page(page: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_" + page.removesuffix(".md").replace("/", "_")}
    for block in blocks(page):
        if block.lang not in RUNNABLE or block.kind == "skip":
            continue
        if block.lang == "django":
            engines["django"].from_string(block.code)
        elif block.kind == "settings":
            _settings(block)
        elif block.kind == "module":
            _module(block.arg, block)
        elif block.kind == "file":
            _same_as_file(block)
        elif block.lang == "pycon":
            _doctest(block, namespace)
        else:
            exec(compile(block.code, block.where, "exec"), namespace)
    return namespace


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager", "isolated")
@pytest.mark.parametrize("page", _pages_with_samples())
def test_samples_run(page: str) -> None:
    run_page(page)
