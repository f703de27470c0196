"""A refused stream in a real browser: the widget polls, then streams again.

The example site allows one live stream per viewer here (``limited_site``), on a
database of its own: the demo's page shows a widget for every task in it, and other
modules' tasks would take the one stream first. A visitor's first tab holds it; a
second tab's widget is refused (429 with ``Retry-After``), follows the task by polling
meanwhile, and streams once the first tab has closed and ``Retry-After`` has passed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chromium import screenshot

from .conftest import apart, serve
from .test_widget import RECORDER

pytestmark = pytest.mark.browser

WHERE = apart("limits")


def test_a_refused_widget_polls_and_streams_again_when_a_stream_is_free(
    page: Any, request: pytest.FixtureRequest
) -> None:
    with serve("postgres", settings="tests.browser.limited_site", **WHERE) as site:
        # The first tab holds the one stream; the fixture's page (whose errors and last
        # screenshot the fixture checks) is the second, refused one.
        first = page.context.new_page()
        first.add_init_script(RECORDER)
        first.goto(site.url + "/")
        first.get_by_role("button", name="slow_task").click()
        first.wait_for_function("window.seen.connection.includes('live')")

        page.add_init_script(RECORDER)
        page.goto(site.url + "/")
        widget = page.locator("[data-tasktrail-status]")
        page.wait_for_function(
            "document.querySelector('[data-tasktrail-status]').dataset.streamRefusals >= 1"
        )
        # Refused, it still follows the task: by polling the JSON status.
        page.wait_for_function("window.seen.updates.length >= 3", timeout=20_000)
        assert widget.get_attribute("data-connection") == "polling"
        screenshot(page, request, "refused-polling")

        first.close()  # the first tab's stream ends, and its lease with it
        # Retry-After is 10 s, spread by up to a half: live again within about 15 s.
        page.wait_for_function(
            "document.querySelector('[data-tasktrail-status]').dataset.connection === 'live'",
            timeout=30_000,
        )
        screenshot(page, request, "live-again")
        record: dict[str, Any] = page.evaluate("window.seen")
    assert record["connection"] == ["polling", "live"], record
