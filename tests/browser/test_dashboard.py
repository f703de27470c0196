"""The operators' dashboard in headless Chromium, against the example site (PostgreSQL,
Redis, a real worker): overview, list, detail; a row following its task live; a retry
and a revoke through the buttons; and the list on a phone's screen.

The site keeps its own database (from ``TT_TEST_DB_NAME``) and broker (``TT_BROKER``),
so runs of other test modules do not meet its tasks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chromium import screenshot

from .conftest import MANAGE, ROOT, Site, apart, environment, serve

pytestmark = pytest.mark.browser

WHERE = apart("dashboard")
ADMIN, PASSWORD = "dash-admin", "dash-admin-pw"
#: The task's state as the server rendered the page.
FAILED = ".tt-detail > p .tt-state[data-state=FAILURE]"
MAKE_ADMIN = f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username={ADMIN!r})
user.is_staff = user.is_superuser = True
user.set_password({PASSWORD!r})
user.save()
"""


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serve("postgres", **WHERE) as running:
        env = {**environment("postgres", **WHERE), "PYTHONPATH": str(ROOT / "example")}
        subprocess.run(
            [sys.executable, str(MANAGE), "shell", "-c", MAKE_ADMIN], env=env, check=True, cwd=ROOT
        )
        yield running


def log_in(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/admin/login/?next=/tasktrail/")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(f"{site.url}/tasktrail/")


def start(page: Any, site: Site, scenario: str) -> str:
    """Start a demo scenario from the demo's page; the id of its task."""
    page.goto(f"{site.url}/")
    page.get_by_role("button", name=scenario, exact=True).click()
    page.wait_for_url(f"{site.url}/")
    task_id: str = page.locator("tr[data-task-id]").first.get_attribute("data-task-id")
    return task_id


def test_overview_list_and_detail_render(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    log_in(page, site)
    task_id = start(page, site, "always_fails")
    page.goto(f"{site.url}/tasktrail/tasks/?id={task_id}")
    # The page reloads itself when its task ends, to show the outcome.
    page.wait_for_selector(FAILED)
    assert "RuntimeError" in page.locator("#tt-error + p").inner_text()
    assert page.locator("pre[data-json=args]").inner_text() == "[]"
    assert page.locator(".tt-timeline li[data-state=FAILURE]").count() == 1
    screenshot(page, request, "detail")

    page.goto(f"{site.url}/tasktrail/")
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.locator("svg[role=img] rect.tt-bar").count() > 0
    assert page.locator("tr[data-worker]").count() >= 1
    screenshot(page, request, "overview")

    page.goto(f"{site.url}/tasktrail/tasks/?state=FAILURE")
    assert (
        page.locator(f"tr[data-task-id='{task_id}'] [data-field=state]").inner_text() == "FAILURE"
    )
    screenshot(page, request, "list")


def test_a_running_row_updates_live_then_is_revoked_and_retried(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    log_in(page, site)
    task_id = start(page, site, "slow_task")
    page.goto(f"{site.url}/tasktrail/tasks/?name=demo.tasks.slow_task")
    page.evaluate("window.loadedOnce = true")
    row = f"tr[data-task-id='{task_id}']"
    page.wait_for_selector(f"{row}[data-state=PROGRESS]")
    first = page.locator(f"{row} [data-field=progress]").inner_text()
    page.wait_for_function(
        "([row, first]) => "
        "document.querySelector(row + ' [data-field=progress]').textContent !== first",
        arg=[row, first],
    )
    assert page.evaluate("window.loadedOnce") is True, "the list was reloaded"
    assert page.locator(f"{row} progress").evaluate("bar => bar.value") > 0
    screenshot(page, request, "live-row")

    page.locator(f"{row} a").first.click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke and terminate").click()
    page.wait_for_selector(".tt-detail > p .tt-state[data-state=REVOKED]")
    audit = page.locator(".tt-timeline li[data-action=revoke_terminate]")
    assert ADMIN in audit.inner_text()
    screenshot(page, request, "revoked")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry").click()
    page.wait_for_selector("[data-link=retry-of]")
    assert task_id in page.locator("[data-link=retry-of]").inner_text()
    retried = page.url.rstrip("/").split("/")[-2]
    assert retried != task_id
    screenshot(page, request, "retried")
    # Stop the new run too, and see the original's page link to it.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke and terminate").click()
    page.wait_for_selector(".tt-detail > p .tt-state[data-state=REVOKED]")
    page.goto(f"{site.url}/tasktrail/tasks/{task_id}/detail/")
    assert retried in page.locator("[data-link=retried-as]").inner_text()


def test_dismissing_the_confirmation_does_nothing(site: Site, page: Any) -> None:
    log_in(page, site)
    task_id = start(page, site, "always_fails")
    page.goto(f"{site.url}/tasktrail/tasks/{task_id}/detail/")
    page.wait_for_selector(FAILED)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Retry").click()
    page.wait_for_timeout(1000)
    assert page.url.endswith(f"/tasks/{task_id}/detail/")
    # Read again from the server: no retry reached it, so nothing was audited.
    page.reload()
    page.wait_for_selector(FAILED)
    assert page.locator(".tt-timeline li[data-action]").count() == 0


def test_the_list_reads_on_a_phone(site: Site, page: Any, request: pytest.FixtureRequest) -> None:
    log_in(page, site)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site.url}/tasktrail/tasks/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, request, "phone-list")
    page.goto(f"{site.url}/tasktrail/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, request, "phone-overview")


def _streaming(page: Any) -> None:
    """Wait until the page's one live stream is open (dashboard.js marks the table)."""
    page.wait_for_selector("table[data-stream-url][data-streaming='1']")
    assert page.evaluate("document.querySelectorAll('table[data-stream-url]').length") == 1


def test_new_tasks_stream_into_the_lists_and_the_counters_tick(
    site: Site, page: Any, request: pytest.FixtureRequest
) -> None:
    log_in(page, site)
    sender = page.context.new_page()

    # The task list, searched by part of a name: a task sent after the page loaded
    # appears at the top without a reload; another name's task does not.
    page.goto(f"{site.url}/tasktrail/tasks/?name=fails")
    page.evaluate("window.loadedOnce = true")
    _streaming(page)
    other = start(sender, site, "build_report")
    failing = start(sender, site, "always_fails")
    row = f"tr[data-task-id='{failing}']"
    page.wait_for_selector(f"{row} .tt-state[data-state=FAILURE]")
    assert page.locator("tbody tr[data-task-id]").first.get_attribute("data-task-id") == failing
    assert page.locator(f"tr[data-task-id='{other}']").count() == 0
    assert page.evaluate("window.loadedOnce") is True, "the list was reloaded"
    # The badge is coloured (CSS on its data-state), not the grey default.
    colour = page.locator(f"{row} .tt-state").evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour != "rgb(234, 238, 242)"
    screenshot(page, request, "streamed-row")

    # Paused, nothing is added; resumed, the stream picks up from its last event.
    page.get_by_role("button", name="Pause").click()
    paused = start(sender, site, "always_fails")
    page.wait_for_timeout(3000)
    assert page.locator(f"tr[data-task-id='{paused}']").count() == 0
    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector(f"tr[data-task-id='{paused}']")

    # Running now, on the overview: a task that starts appears; the counters follow.
    page.goto(f"{site.url}/tasktrail/")
    page.evaluate("window.loadedOnce = true")
    _streaming(page)
    before = page.locator(".tt-card[data-window=hour] [data-total]").inner_text()
    running = start(sender, site, "slow_task")
    section = "section[aria-labelledby=tt-running]"
    page.wait_for_selector(f"{section} tr[data-task-id='{running}']")
    page.wait_for_function(
        "before => document.querySelector('.tt-card[data-window=hour] [data-total]')"
        ".textContent !== before",
        arg=before,
    )
    assert page.evaluate("window.loadedOnce") is True, "the overview was reloaded"
    screenshot(page, request, "running-now-live")

    # Stop it; its row leaves "Running now".
    sender.goto(f"{site.url}/tasktrail/tasks/{running}/detail/")
    sender.once("dialog", lambda dialog: dialog.accept())
    sender.get_by_role("button", name="Revoke and terminate").click()
    sender.wait_for_selector(".tt-detail > p .tt-state[data-state=REVOKED]")
    page.wait_for_selector(f"{section} tr[data-task-id='{running}']", state="detached")
