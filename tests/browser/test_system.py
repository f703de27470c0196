"""The workers and queues pages in headless Chromium, against the example site
(PostgreSQL, Redis, a real worker): reached from the dashboard's navigation."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Site, screenshot
from .test_dashboard import log_in, site, start  # noqa: F401  (the site fixture)

pytestmark = pytest.mark.browser


def test_workers_and_queues_from_the_navigation(
    site: Site,  # noqa: F811
    page: Any,
    request: pytest.FixtureRequest,
) -> None:
    log_in(page, site)
    start(page, site, "always_fails")
    page.goto(f"{site.url}/tasktrail/")
    page.get_by_role("link", name="Workers", exact=True).click()
    page.wait_for_url(f"{site.url}/tasktrail/workers/")
    assert page.get_by_role("heading", name="Workers").is_visible()
    row = page.locator("tr[data-worker]").first
    row.wait_for()
    # The example's worker reports its pool with its heartbeat.
    assert row.locator("[data-pool]").inner_text().isdigit()
    assert row.locator(".tt-worker").inner_text() == "alive"
    screenshot(page, request, "workers")

    page.get_by_role("link", name="Queues", exact=True).click()
    page.wait_for_url(f"{site.url}/tasktrail/queues/")
    assert page.get_by_role("heading", name="Queues").is_visible()
    assert page.locator("[data-broker-error]").count() == 0
    depth = page.locator("tr[data-queue] [data-depth]").first.inner_text()
    assert depth.isdigit(), depth
    screenshot(page, request, "queues")
