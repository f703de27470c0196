"""The example project end to end, as a user runs it: ``python example/manage.py demo``.

Each test runs the command in a subprocess with the example's own settings (not
``tests.settings``) and its embedded default (SQLite and the filesystem broker
under ``example/var/``), unless ``TASKTRAIL_DEMO_*`` variables choose servers.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
    """Wait for ``process``; on timeout stop it as a user would (SIGTERM), so it cleans up."""
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Browser:
    """Just enough of a browser: cookies, and the CSRF token sent back with each POST."""

    def __init__(self, base: str) -> None:
        self.base = base
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

    def post(self, path: str) -> int:
        token = next(c.value for c in self.cookies if c.name == "csrftoken") or ""
        request = urllib.request.Request(
            self.base + path,
            method="POST",
            headers={"X-CSRFToken": token, "Referer": self.base + "/"},
        )
        with self.opener.open(request, timeout=10) as response:
            return int(response.status)

    def status(self, url: str) -> dict[str, Any]:
        code, body = self.get(url)
        assert code == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux); empty where /proc does not list them."""
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listing.read_text().split()] if listing.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def site() -> Iterator[str]:
    """The demo serving on a free port; stopped with SIGTERM, which must leave nothing behind."""
    port = _free_port()
    demo = _demo("--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while Browser(base).get("/")[0] != 200:
            assert demo.poll() is None, demo.communicate()[0]
            assert time.monotonic() < deadline, "the demo site did not come up in 30 s"
            time.sleep(0.2)
        children = _children(demo.pid)
        yield base
    finally:
        demo.send_signal(signal.SIGTERM)
        output = _finish(demo, timeout=30)
    assert demo.returncode == 0, output
    assert not [pid for pid in children if _alive(pid)], output


def test_page_starts_a_task_and_reports_it_only_to_its_session(site: str) -> None:
    browser = Browser(site)
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
    assert Browser(site).get(urls[0])[0] == 404  # another visitor
