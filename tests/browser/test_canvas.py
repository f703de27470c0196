"""A group, a chain and a chord in headless Chromium, against the example site
(PostgreSQL, Redis, a real worker): the dashboard's group page with its live group
bar, reached from a member's detail page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import MANAGE, ROOT, Site, apart, environment, screenshot, serve
from .test_dashboard import MAKE_ADMIN, log_in

pytestmark = pytest.mark.browser

WHERE = apart("canvas")
BAR = ".tasktrail-group"
#: Sent from the site's own shell, as an application would; prints the ids.
SEND = """
from celery import chain, chord, group
from demo.tasks import always_fails, build_report
kind = {kind!r}
if kind == "group":
    result = group([build_report.s(2, 0.1) for _ in range(9)] + [always_fails.s()]).apply_async()
    print("IDS", result.id, result.results[0].id)
elif kind == "chord":
    result = chord(build_report.s(2, 0.1) for _ in range(5))(build_report.si(1, 0.1))
    print("IDS", result.parent.id, result.id)
else:
    result = chain(build_report.si(4, 0.5), build_report.si(4, 0.5), build_report.si(4, 0.5))()
    print("IDS", result.id, result.parent.parent.id)
"""


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Site, dict[str, str]]]:
    with serve("postgres", **WHERE) as running:
        env = {**environment("postgres", **WHERE), "PYTHONPATH": str(ROOT / "example")}
        subprocess.run(
            [sys.executable, str(MANAGE), "shell", "-c", MAKE_ADMIN], env=env, check=True, cwd=ROOT
        )
        yield running, env


def send(env: dict[str, str], kind: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", SEND.format(kind=kind)],
        env=env, check=False, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The shell may print more (the models it imported): the ids' line is marked.
    return next(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("IDS "))


def test_a_group_of_ten_fills_its_bar_and_names_the_failure(
    site: tuple[Site, dict[str, str]], page: Any, request: pytest.FixtureRequest
) -> None:
    running, env = site
    log_in(page, running)
    group_id, member = send(env, "group")
    # From a member's detail page to its group's, as an operator would.
    page.goto(f"{running.url}/tasktrail/tasks/{member}/detail/")
    page.locator("[data-link=group] a").click()
    page.wait_for_url(f"**/tasktrail/groups/{group_id}/detail/")
    page.evaluate("window.loadedOnce = true")
    page.wait_for_selector(f"{BAR}[data-ready=true]", timeout=60_000)
    screenshot(page, request, "group-done")
    assert page.evaluate("window.loadedOnce") is True, "the page was reloaded"
    assert page.locator(f"{BAR} .tasktrail-group-progress").inner_text() == (
        "10 of 10 done, 1 failed"
    )
    assert page.locator(f"{BAR} .tasktrail-group-state").inner_text().startswith("Failed")
    assert page.locator(f"{BAR} progress").evaluate("bar => bar.value") == 100
    parts = page.locator(f"{BAR} .tasktrail-group-parts li")
    assert parts.count() == 10
    assert page.locator(f"{BAR} li[data-state=FAILURE]").count() == 1
    assert page.locator(f"{BAR} li[data-state=SUCCESS]").count() == 9
    # The member table's rows follow their tasks too, through the dashboard's own live
    # rows: another stream than the bar's, so they may land a moment after it.
    page.wait_for_function(
        "() => document.querySelectorAll('tr[data-task-id][data-state=SUCCESS]').length === 9",
        timeout=30_000,
    )
    assert page.locator("tr[data-task-id][data-state=FAILURE]").count() == 1


def test_a_chord_shows_its_callback_and_result(
    site: tuple[Site, dict[str, str]], page: Any, request: pytest.FixtureRequest
) -> None:
    running, env = site
    log_in(page, running)
    group_id, callback = send(env, "chord")
    page.goto(f"{running.url}/tasktrail/groups/{group_id}/detail/")
    page.wait_for_selector(f"{BAR}[data-ready=true]", timeout=60_000)
    screenshot(page, request, "chord-done")
    assert page.locator(f"{BAR} .tasktrail-group-progress").inner_text() == "5 of 5 done"
    assert page.locator(f"{BAR} li[data-callback]").get_attribute("data-state") == "SUCCESS"
    assert page.locator(f"{BAR} li[data-callback]").get_attribute("data-id") == callback
    assert "Result:" in page.locator(f"{BAR} .tasktrail-group-outcome").inner_text()


def test_a_chain_marks_the_step_running_now(
    site: tuple[Site, dict[str, str]], page: Any, request: pytest.FixtureRequest
) -> None:
    running, env = site
    log_in(page, running)
    last, first = send(env, "chain")
    # Every status the bar rendered, from the page itself.
    page.add_init_script(
        "window.currents = [];"
        "document.addEventListener('tasktrail:group', e => window.currents.push(e.detail.current));"
    )
    page.goto(f"{running.url}/tasktrail/chains/{last}/detail/")
    steps = page.locator(f"{BAR} .tasktrail-group-parts li")
    page.wait_for_function(
        "() => document.querySelectorAll('.tasktrail-group-parts li').length === 3"
    )
    assert steps.first.get_attribute("data-id") == first
    # A step is marked as the current one while the chain runs, then none is.
    page.wait_for_selector(f"{BAR} li[aria-current=step]", timeout=30_000)
    screenshot(page, request, "chain-running")
    page.wait_for_selector(f"{BAR}[data-ready=true]", timeout=60_000)
    assert page.locator(f"{BAR} li[aria-current=step]").count() == 0
    currents = page.evaluate("window.currents")
    assert currents[-1] is None and set(currents[:-1]) <= {0, 1, 2}, currents
    assert currents[:-1] == sorted(currents[:-1]), currents
    assert page.locator(f"{BAR} .tasktrail-group-progress").inner_text() == "3 of 3 steps done"
    screenshot(page, request, "chain-done")
