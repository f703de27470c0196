"""How the live status looks, rule by rule, in Chromium on the demo (``manage.py demo``).

Each rule is one a newcomer tripped over: a bar only where there is progress, no stale
"57 s to go" once a task ended, "30%" written without a space, states in words and in
colour from tasktrail.css (themable through its custom properties), and a task's
dashboard page that shows its progress once, live, with a running attempt called running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chromium import screenshot

from .conftest import Site, serve

pytestmark = pytest.mark.browser

#: tasktrail.css's colours, as Chromium computes them.
SUCCESS, FAILURE, RUNNING = "rgb(26, 127, 55)", "rgb(207, 34, 46)", "rgb(9, 105, 218)"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serve("embedded") as running:
        yield running


def widget_of(page: Any, scenario: str) -> Any:
    """The live status of the newest task of ``scenario`` on the demo's page."""
    return page.locator("tr[data-task-id]", has_text=scenario).first.locator(
        "[data-tasktrail-status]"
    )


def start(page: Any, site: Site, scenario: str) -> Any:
    page.goto(f"{site.url}/")
    page.get_by_role("button", name=scenario, exact=True).click()
    page.wait_for_url(f"{site.url}/")
    return widget_of(page, scenario)


def colour(locator: Any) -> str:
    value: str = locator.evaluate("element => getComputedStyle(element).color")
    return value


def password(site: Site) -> str:
    """The operator's password, as ``manage.py demo`` printed it for its user."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"log in as operator, password (\S+)\)", site.log.read_text())
        if found:
            return found[1]
        time.sleep(0.2)
    pytest.fail(f"the demo printed no operator password; see {site.log}")


def log_in_as_operator(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/")
    page.get_by_role("button", name="dashboard").click()
    page.fill("#id_username", "operator")
    page.fill("#id_password", password(site))
    page.click("[type=submit]")
    page.wait_for_url(f"{site.url}/tasktrail/")


def test_a_task_without_progress_has_no_bar_and_its_state_in_colour(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    widget = start(page, site, "always_fails")
    page.wait_for_function(
        "w => w.dataset.state === 'FAILURE'", arg=widget.element_handle(), timeout=30_000
    )
    screenshot(page, request, "failed")
    assert widget.locator(".tasktrail-bar").is_hidden(), "an empty bar reads as stuck at 0%"
    state = widget.locator(".tasktrail-state")
    assert state.inner_text() == "Failed"
    assert colour(state) == FAILURE
    assert "on purpose" in widget.locator(".tasktrail-outcome").inner_text()

    # A retried task reports no progress either: no bar while it waits and runs.
    widget = start(page, site, "send_email")
    page.wait_for_function("w => w.dataset.state === 'RETRY'", arg=widget.element_handle())
    assert widget.locator(".tasktrail-bar").is_hidden()
    assert widget.locator(".tasktrail-state").inner_text().startswith("Waiting to retry")
    page.wait_for_function("w => w.dataset.state === 'SUCCESS'", arg=widget.element_handle())
    assert widget.locator(".tasktrail-bar").is_hidden()
    assert colour(widget.locator(".tasktrail-state")) == SUCCESS


def test_percent_is_written_without_a_space_and_a_revoked_task_shows_no_eta(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    widget = start(page, site, "slow_task")
    message = widget.locator(".tasktrail-message")
    page.wait_for_function(
        "w => / s to go$/.test(w.querySelector('.tasktrail-message').textContent)",
        arg=widget.element_handle(),
    )
    state = widget.locator(".tasktrail-state").inner_text()
    assert re.fullmatch(r"Running: \d+%", state), state
    assert widget.locator(".tasktrail-bar").is_visible()
    assert colour(widget.locator(".tasktrail-state")) == RUNNING
    screenshot(page, request, "running")

    page.locator("tr[data-task-id]", has_text="slow_task").first.get_by_role(
        "button", name="Revoke"
    ).click()
    widget = widget_of(page, "slow_task")
    page.wait_for_function("w => w.dataset.state === 'REVOKED'", arg=widget.element_handle())
    screenshot(page, request, "revoked")
    assert widget.locator(".tasktrail-state").inner_text() == "Revoked"
    message = widget.locator(".tasktrail-message")
    assert message.text_content() == "" and message.is_hidden(), "a revoked task has no ETA"
    # How far it got stays visible; the bar is not filled as if it had finished.
    assert widget.locator(".tasktrail-bar").is_visible()
    assert widget.locator(".tasktrail-bar").evaluate("bar => bar.value") < 100


def test_a_site_themes_the_widget_through_custom_properties(site: Site, page: Any) -> None:
    widget = start(page, site, "build_report")
    page.wait_for_function("w => w.dataset.state === 'SUCCESS'", arg=widget.element_handle())
    sheets = page.evaluate("[...document.styleSheets].map(s => s.href || '')")
    assert any("/assets/tasktrail.css?v=" in href for href in sheets), sheets
    assert colour(widget.locator(".tasktrail-state")) == SUCCESS
    assert widget.locator(".tasktrail-bar").evaluate("bar => bar.value") == 100
    page.add_style_tag(content=".tasktrail-status { --tasktrail-success: rgb(1, 2, 3); }")
    assert colour(widget.locator(".tasktrail-state")) == "rgb(1, 2, 3)"


def test_the_detail_page_shows_progress_once_and_a_running_attempt_as_running(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    log_in_as_operator(page, site)
    start(page, site, "slow_task")
    task_id = page.locator("tr[data-task-id]", has_text="slow_task").first.get_attribute(
        "data-task-id"
    )
    page.goto(f"{site.url}/tasktrail/tasks/{task_id}/detail/")
    live = page.locator(".tt-detail [data-tasktrail-status]")
    page.wait_for_function("w => w.dataset.state === 'PROGRESS'", arg=live.element_handle())
    screenshot(page, request, "running")
    assert live.locator(".tasktrail-heading").inner_text().startswith("Running"), "no label"
    assert "Live" not in page.locator(".tt-detail").inner_text()
    # One progress on the page, the live one: none in the record's facts while it runs.
    assert page.locator(".tt-facts dt", has_text="Progress").count() == 0
    attempt = page.locator("#tt-attempts ~ .tt-scroll tbody tr").first
    assert attempt.locator("[data-label=Outcome]").inner_text() == "running"
    assert "Ended as" not in page.locator(".tt-detail").inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke and terminate").click()
    page.wait_for_selector(".tt-detail > p .tt-state[data-state=REVOKED]")
    screenshot(page, request, "revoked")
    # Ended: the page reloaded, and the record now holds the last progress.
    assert page.locator(".tt-facts dt", has_text="Progress").count() == 1
    outcome = page.locator("#tt-attempts ~ .tt-scroll tbody tr [data-label=Outcome]").first
    assert outcome.inner_text() == "REVOKED"
