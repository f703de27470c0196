"""The browser tests' Chromium, for the newcomer test (tests/browser/conftest.py)."""

from tests.browser.conftest import browser, page  # noqa: F401 (fixtures)
