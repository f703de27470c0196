"""The example project end to end, as a user runs it: ``python example/manage.py demo``.

Each test runs the command in a subprocess with the example's own settings (not
``tests.settings``) and its embedded default (SQLite and the filesystem broker
under ``example/var/``), unless ``TASKTRAIL_DEMO_*`` variables choose servers.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import sites

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "example" / "manage.py"

pytestmark = pytest.mark.acceptance


def _env() -> dict[str, str]:
    # pytest runs with tests.settings; the example must use its own.
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "exampleproject.settings"}


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "demo", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float) -> str:
    """Wait for ``process``; on timeout stop it as a user would (SIGTERM), so it cleans up,
    and then whatever of it is left (:func:`tests.sites.stop`)."""
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        sites.stop(process)
        output = process.communicate()[0]
        pytest.fail(f"demo did not finish within {timeout} s:\n{output}")


def test_check_runs_every_scenario_to_its_expected_outcome() -> None:
    began = time.monotonic()
    output = _finish(_demo("--check", "--timeout", "60"), timeout=150)
    elapsed = time.monotonic() - began

    assert "ok: every scenario ended as expected" in output, output
    lines = {line.split()[0]: line for line in output.splitlines() if line[:1].isalpha()}
    send_email = re.match(r"send_email\s+SUCCESS\s+attempts=(\d+)", lines["send_email"])
    assert send_email, output
    assert int(send_email[1]) > 1
    assert re.search(r"history: .*\bRETRY\b.*\bSUCCESS$", output, re.MULTILINE), output
    assert re.match(r"build_report\s+SUCCESS\s.*progress 100%", lines["build_report"]), output
    failure = r"always_fails\s+FAILURE\s.*RuntimeError: .*on purpose"
    assert re.match(failure, lines["always_fails"]), output
    assert re.match(r"slow_task\s+REVOKED\s", lines["slow_task"]), output
    assert elapsed < 60, f"the check took {elapsed:.1f} s"


class Browser:
    """Just enough of a browser: cookies, and the CSRF token sent back with each POST."""

    def __init__(self, base: str) -> None:
        self.base = base
        #: Where the last POST ended up, after redirects.
        self.url = ""
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> tuple[int, str]:
        """Status and body; status 0 when nothing answers."""
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except urllib.error.URLError:
            return 0, ""

    def post(self, path: str, form: dict[str, str] | None = None) -> int:
        token = next(c.value for c in self.cookies if c.name == "csrftoken") or ""
        request = urllib.request.Request(
            self.base + path,
            data=urllib.parse.urlencode(form or {}).encode(),
            method="POST",
            headers={"X-CSRFToken": token, "Referer": self.base + "/"},
        )
        with self.opener.open(request, timeout=10) as response:
            self.url = response.url
            return int(response.status)

    def status(self, url: str) -> dict[str, Any]:
        code, body = self.get(url)
        assert code == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer


@dataclasses.dataclass
class Demo:
    base: str
    #: What ``manage.py demo`` printed so far, line by line.
    lines: list[str]

    def password(self) -> str:
        found = [re.search(r"password (\S+)\)", line) for line in self.lines]
        return next(match[1] for match in found if match)


@pytest.fixture
def site() -> Iterator[Demo]:
    """The demo serving on a free port; stopped with SIGTERM, which must leave nothing behind."""
    port = sites.free_port()
    demo = _demo("--port", str(port))
    lines: list[str] = []
    assert demo.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        # Migrations on a new database, two processes starting: ~20 s on a busy machine.
        deadline = time.monotonic() + 60
        # Up once it said how to stop it: its last line while it runs.
        while not (lines and "Ctrl-C to stop." in lines[-1]):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"the demo did not come up in 60 s: {lines}"
            time.sleep(0.2)
        assert Browser(base).get("/")[0] == 200
        # Its worker and its web server, each in a session of its own.
        children = sites.tree(demo.pid, depth=1)
        yield Demo(base, lines)
    finally:
        # SIGTERM, and what is left of it killed: a worker of the demo outliving it
        # would hold the example's SQLite database against the next demo.
        stopped = sites.stop(demo, grace=30)
        reader.join(timeout=10)
    output = "".join(lines)
    assert stopped.in_time, f"demo did not stop within 30 s of SIGTERM:\n{output}"
    assert stopped.returncode == 0, output
    assert not set(stopped.left) & set(children), output


def test_page_starts_a_task_and_reports_it_only_to_its_session(site: Demo) -> None:
    browser = Browser(site.base)
    assert browser.get("/")[0] == 200
    assert browser.post("/start/build_report/") == 200  # redirected back to the page
    code, page = browser.get("/")
    urls = re.findall(r'data-status-url="([^"]+)"', page)
    assert code == 200
    assert len(urls) == 1

    deadline = time.monotonic() + 30
    while (task := browser.status(urls[0]))["phase"] != "done":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    assert task["state"] == "SUCCESS"
    assert task["progress"]["percent"] == 100
    assert task["result"] == {"rows": 10, "total": 420}
    assert Browser(site.base).get(urls[0])[0] == 404  # another visitor


def test_the_url_and_password_are_the_last_lines_and_no_banner_hides_them(site: Demo) -> None:
    """The worker's banner and log go to a file: the terminal ends with what to open."""
    last = [line.strip() for line in site.lines if line.strip()][-3:]
    assert last[0] == f"tasktrail demo: {site.base}/", site.lines
    assert last[1].startswith(f"dashboard:      {site.base}/tasktrail/ (log in as operator")
    assert last[2] == "Ctrl-C to stop."
    banner = [line for line in site.lines if "celery@" in line or "[config]" in line]
    assert not banner, site.lines


def test_the_admin_is_styled_under_the_asgi_server(site: Demo) -> None:
    browser = Browser(site.base)
    code, login = browser.get("/admin/login/")
    assert code == 200
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', login)
    assert sheets, login
    for sheet in sheets:
        with browser.opener.open(site.base + sheet, timeout=10) as response:
            assert response.status == 200, sheet
            assert response.headers["Content-Type"].startswith("text/css"), sheet


def test_a_visitor_becomes_the_operator_and_still_sees_the_tasks_started(site: Demo) -> None:
    browser = Browser(site.base)
    browser.get("/")
    browser.post("/start/always_fails/")
    task_id = re.findall(r'data-task-id="([^"]+)"', browser.get("/")[1])[0]

    # The page's dashboard button: the visitor is logged out before the operator's login.
    browser.post("/operator/")
    assert urllib.parse.urlparse(browser.url).path == "/admin/login/", browser.url
    code, login = browser.get("/admin/login/?next=/tasktrail/")
    assert code == 200 and "You are authenticated as" not in login, login
    browser.post(
        "/admin/login/?next=/tasktrail/",
        {"username": "operator", "password": site.password(), "next": "/tasktrail/"},
    )
    assert urllib.parse.urlparse(browser.url).path == "/tasktrail/", browser.url

    code, page = browser.get("/")
    assert code == 200 and task_id in page, page
    assert "None yet" not in page
    # Staff see every task's live status, the visitor's too.
    status_url = re.findall(r'data-status-url="([^"]+)"', page)[0]
    assert browser.status(status_url)["id"] == task_id


def test_a_busy_port_says_how_to_choose_another_with_make(site: Demo) -> None:
    port = urllib.parse.urlparse(site.base).port
    output = _finish(_demo("--port", str(port)), timeout=60)
    assert f"port {port} is in use" in output, output
    assert re.search(r'make demo ARGS="--port \d+"', output), output


def _demo_rows(query: str) -> int:
    """A count from the demo's own database, through its own settings."""
    code = f"from tasktrail.models import Task, Worker; print({query})"
    shell = [sys.executable, str(MANAGE), "shell", "-c", code]
    env = {**_env(), "PYTHONPATH": str(REPO / "example")}
    answer = subprocess.run(shell, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    # Django's shell may say first what it imported: the count is the last line.
    return int(answer.stdout.split()[-1])


def test_the_check_leaves_none_of_its_tasks_or_its_worker_behind() -> None:
    output = _finish(_demo("--check", "--timeout", "60"), timeout=150)
    assert "ok: every scenario ended as expected" in output, output
    assert _demo_rows("Task.objects.filter(queue='demo-check').count()") == 0
    assert _demo_rows("Worker.objects.filter(hostname__startswith='demo-check@').count()") == 0
