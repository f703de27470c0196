"""What a person sees: the example page's live status, in a real browser, with no reload."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chromium import screenshot

from .conftest import Proxy, Site, serve

pytestmark = pytest.mark.browser

# Records what the widget showed, from the page itself, before any script of the page
# runs: every update it rendered and each state of its connection.
RECORDER = """
  window.seen = { updates: [], connection: [] };
  document.addEventListener("tasktrail:update", (e) => window.seen.updates.push(e.detail));
  new MutationObserver(() => {
    const state = document.querySelector("[data-tasktrail-status]")?.dataset.connection;
    const log = window.seen.connection;
    if (state && log[log.length - 1] !== state) log.push(state);
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-connection"] });
"""
DONE = "[data-tasktrail-status][data-state='SUCCESS']"


@pytest.fixture(scope="module", params=["embedded", "redis", "postgres"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The demo under uvicorn; its notifier is polling, Redis or PostgreSQL respectively."""
    with serve(request.param) as running:
        yield running


def start_report(page: Any, url: str) -> None:
    page.add_init_script(RECORDER)
    page.goto(url + "/")
    page.get_by_role("button", name="build_report").click()
    page.wait_for_selector("[data-tasktrail-status]")
    # A reload would lose this: the page must change in place from here on.
    page.evaluate("window.loadedOnce = true")


def seen(page: Any) -> dict[str, Any]:
    assert page.evaluate("window.loadedOnce") is True, "the page was reloaded"
    result: dict[str, Any] = page.evaluate("window.seen")
    return result


def test_the_bar_fills_and_the_outcome_appears_without_a_reload(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    start_report(page, site.url)
    page.wait_for_function("window.seen.updates.some(s => s.progress && s.progress.current >= 3)")
    screenshot(page, request, "running")
    page.wait_for_selector(DONE)
    screenshot(page, request, "done")

    widget = page.locator("[data-tasktrail-status]")
    bar = page.get_by_role("progressbar")
    assert bar.evaluate("bar => bar.value") == 100
    assert widget.locator(".tasktrail-state").inner_text() == "Succeeded"
    # The last progress message ("row 10 of 10") described the run; the run is over.
    assert widget.locator(".tasktrail-message").text_content() == ""
    assert widget.locator(".tasktrail-outcome").inner_text() == 'Result: {"rows":10,"total":420}'
    assert page.locator("form.revoke").count() == 0  # the page reacted to the update
    record = seen(page)
    progress = [u["progress"]["current"] for u in record["updates"] if u["progress"]]
    assert len(set(progress)) >= 3, record  # it moved, not just jumped to the end
    assert progress == sorted(progress)
    # A live stream to the end (it may have polled once if it asked before the row landed).
    assert record["connection"][-2:] == ["live", "closed"], page.answers


def test_a_dropped_stream_reconnects_and_resumes(page: Any, request: pytest.FixtureRequest) -> None:
    with serve("embedded") as running:
        proxy = Proxy(int(running.url.rsplit(":", 1)[1]))
        try:
            start_report(page, f"http://127.0.0.1:{proxy.port}")
            page.wait_for_function("window.seen.updates.some(s => s.state === 'PROGRESS')")
            cut_at = len(proxy.requests)
            proxy.cut(down_for=1.5)
            page.wait_for_function("window.seen.connection.includes('reconnecting')")
            screenshot(page, request, "reconnecting")
            page.wait_for_selector(DONE)
            screenshot(page, request, "done")
        finally:
            proxy.close()
    record = seen(page)
    assert record["connection"][-4:] == ["live", "reconnecting", "live", "closed"], record
    resumed = [r for r in proxy.requests[cut_at:] if b"/events/" in r.split(b"\r\n", 1)[0]]
    assert resumed, "the browser never reopened the stream"
    assert b"last-event-id:" in resumed[0].lower(), resumed[0]
    assert page.get_by_role("progressbar").evaluate("bar => bar.value") == 100


def test_under_wsgi_the_widget_polls_to_the_outcome(
    page: Any, request: pytest.FixtureRequest
) -> None:
    with serve("embedded", server="wsgi") as running:
        began = time.monotonic()
        start_report(page, running.url)
        page.wait_for_selector(DONE)
        screenshot(page, request, "done")
    record = seen(page)
    assert record["connection"] == ["polling", "closed"], record
    assert page.get_by_role("progressbar").evaluate("bar => bar.value") == 100
    assert time.monotonic() - began < 60
