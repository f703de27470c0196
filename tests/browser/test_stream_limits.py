"""A refused stream in a real browser: the widget polls, then streams again.

The example site allows one live stream per viewer here (``limited_site``). A visitor's
first tab holds it; a second tab's widget is refused (429 with ``Retry-After``), follows
the task by polling meanwhile, and streams once the first tab has closed and
``Retry-After`` has passed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chromium import screenshot

from .conftest import serve
from .test_widget import RECORDER

pytestmark = pytest.mark.browser


@pytest.mark.skip(
    reason="unfinished: on its one run (load 25) the first tab's widget did not go live "
    "within 30 s; not yet known whether the demo page opens a second stream first"
)
def test_a_refused_widget_polls_and_streams_again_when_a_stream_is_free(
    page: Any, request: pytest.FixtureRequest
) -> None:
    with serve("embedded", settings="tests.browser.limited_site") as site:
        page.add_init_script(RECORDER)
        page.goto(site.url + "/")
        page.get_by_role("button", name="slow_task").click()
        page.wait_for_function("window.seen.connection.includes('live')")

        second = page.context.new_page()
        second.add_init_script(RECORDER)
        second.goto(site.url + "/")
        widget = second.locator("[data-tasktrail-status]")
        second.wait_for_function(
            "document.querySelector('[data-tasktrail-status]').dataset.streamRefusals >= 1"
        )
        # Refused, it still follows the task: by polling the JSON status.
        second.wait_for_function("window.seen.updates.length >= 3", timeout=20_000)
        assert widget.get_attribute("data-connection") == "polling"
        screenshot(second, request, "refused-polling")

        page.close()  # the first tab's stream ends, and its lease with it
        # Retry-After is 10 s, spread by up to a half: live again within about 15 s.
        second.wait_for_function(
            "document.querySelector('[data-tasktrail-status]').dataset.connection === 'live'",
            timeout=30_000,
        )
        screenshot(second, request, "live-again")
        record: dict[str, Any] = second.evaluate("window.seen")
    assert record["connection"] == ["polling", "live"], record
