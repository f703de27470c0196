"""Headless Chromium (Debian's ``chromium``, driven by Playwright's sync API): the
``browser`` and ``page`` fixtures of every test that opens a page.

A pytest plugin registered by tests/conftest.py, so that there is one ``browser`` for
the whole session: Playwright's sync API refuses to start a second instance while one
runs ("using Playwright Sync API inside the asyncio loop"), which is what two copies
of a session fixture in two conftest files did when the browser and acceptance tests
ran in one session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: browser tests are required)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: uv pip install playwright")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # What the server answered, for the failure messages of the tests.
    page.answers = []
    page.on("response", lambda r: page.answers.append(f"{r.status} {r.request.method} {r.url}"))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{slug(request.node.name)}-last.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")


def screenshot(page: Any, request: pytest.FixtureRequest, step: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{slug(request.node.name)}-{step}.png"), full_page=True)
