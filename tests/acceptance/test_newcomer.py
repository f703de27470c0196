"""The newcomer's path: the tutorial, followed literally in a new project, on the built wheel.

The test builds tasktrail's wheel, makes a fresh virtualenv and walks the tutorial's pages
in order (tests/docs/pages.py ``tutorial()``): each ``$`` command of their console blocks
runs as written (``pip install`` with the wheel for ``django-tasktrail``, ``django-admin
startproject``, ``manage.py startapp`` and ``migrate``), each block that names a project
file (``# file: myapp/tasks.py``, ``(append)``) is written there. The long-running
commands the pages start (the Celery worker, uvicorn) then run as written, and Chromium
opens the page the tutorial builds: the widget must go from waiting to a moving progress
bar to the result without a reload. Last, the ``curl`` transcript of the status page runs
against the site and must print what the page shows.

What the test changes in what the pages say: the broker's URL (a Redis database of the
test's own), the server's port (a free one), and how tasktrail is had (the wheel it
built stands for ``django-tasktrail`` in ``pip install``; commands that fetch or build
tasktrail's source are skipped). ``createsuperuser`` runs with ``--noinput`` and the
name and password in Django's ``DJANGO_SUPERUSER_*`` variables, since it would ask.
Any other command the test does not know fails it, so the pages cannot grow a step the
newcomer must take that the test leaves out.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import sites
from tests.chromium import screenshot
from tests.conftest import require
from tests.docs.pages import ROOT, Block, blocks, tutorial

pytestmark = [pytest.mark.acceptance, pytest.mark.browser]

ARTIFACTS = ROOT / "artifacts" / "newcomer"
#: The broker the tutorial's settings name, and the one the test uses instead.
DOCS_BROKER = "redis://127.0.0.1:6379/0"
_RUN_BROKER = os.environ.get("TT_BROKER", "")
#: The run's own Redis database where it has one (``TT_BROKER``), else one of its own.
BROKER = _RUN_BROKER if _RUN_BROKER.startswith("redis://") else "redis://127.0.0.1:6379/14"
DOCS_PORT = "8000"
#: The staff user ``createsuperuser`` makes (it would ask for these).
STAFF = ("staff", "newcomer-staff-9q4")
#: Commands the pages start and leave running, by their first word.
SERVERS = {"celery", "uvicorn"}
#: What each page's transcript runs against the site, later, once it is up.
LATER = {"curl"}


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of a console block, and the output lines the page shows for it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            found.append((line.removeprefix("$ ").split("  #")[0].strip(), []))
        elif found and line.strip():
            found[-1][1].append(line)
    return found


class Project:
    """The reader's project, built as the tutorial says, in ``root`` with ``venv``."""

    def __init__(self, root: Path, venv: Path, wheel: Path) -> None:
        self.root = root
        self.venv = venv
        self.wheel = wheel
        self.servers: list[str] = []
        self.later: list[tuple[str, list[str], str]] = []  # command, output, where
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV"}
        }
        self.env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            VIRTUAL_ENV=str(venv),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.log = (ARTIFACTS / "setup.log").open("w")

    def run(self, command: str, where: str) -> None:
        argv = shlex.split(command)
        if argv[0] in SERVERS:
            self.servers.append(command)
            return
        if argv[0] in LATER:
            raise AssertionError(f"{where}: {command!r} is run with its output, not here")
        if argv[0] == "cd" or ("tasktrail" in command and argv[:2] != ["pip", "install"]):
            return  # getting tasktrail's source (a clone, a build): the test built the wheel
        if argv[:2] == ["pip", "install"]:
            argv = [self._uv(), "pip", "install", "--python", str(self.venv / "bin" / "python")]
            argv += [self._requirement(token) for token in shlex.split(command)[2:]]
        elif argv[:2] == ["python", "manage.py"] and argv[2] in {"startapp", "migrate"}:
            argv[0] = str(self.venv / "bin" / "python")
        elif argv[0] == "django-admin":
            argv[0] = str(self.venv / "bin" / "django-admin")
        elif argv[:3] == ["python", "manage.py", "createsuperuser"]:
            # It asks for a name and a password: given as Django reads them with --noinput.
            argv = [str(self.venv / "bin" / "python"), *argv[1:], "--noinput"]
            self.env.update(
                DJANGO_SUPERUSER_USERNAME=STAFF[0],
                DJANGO_SUPERUSER_PASSWORD=STAFF[1],
                DJANGO_SUPERUSER_EMAIL="staff@example.com",
            )
        else:
            raise AssertionError(f"{where}: the newcomer test does not know {command!r}")
        self.log.write(f"$ {command}\n")
        self.log.flush()
        done = subprocess.run(
            argv, cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"{where}: {command!r} failed; see {ARTIFACTS}/setup.log"

    def _uv(self) -> str:
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        assert uv, "uv is needed to install the wheel (make install provides it)"
        return uv

    def _requirement(self, token: str) -> str:
        """The built wheel for the tutorial's ``django-tasktrail[...]``, with its extras."""
        if "tasktrail" not in token:
            return token
        extras = re.search(r"\[[^\]]*\]", token)
        return f"django-tasktrail{extras[0] if extras else ''} @ {self.wheel.as_uri()}"

    def write(self, block: Block) -> None:
        assert block.target is not None
        path = self.root / block.target.path
        code = block.code.replace(DOCS_BROKER, BROKER)
        if block.target.append:
            assert path.exists(), f"{block.where}: appends to {block.target.path}, not made yet"
            path.write_text(path.read_text() + "\n\n" + code)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)

    def follow(self, page: str) -> None:
        for block in blocks(page):
            if block.lang == "console":
                for command, output in _commands(block):
                    if shlex.split(command)[0] in LATER:
                        self.later.append((command, output, block.where))
                    else:
                        self.run(command, block.where)
            elif block.target is not None:
                self.write(block)


def _build_wheel(out: Path) -> Path:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is needed to build the wheel"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = out.glob("django_tasktrail-*.whl")
    return wheel


def _purge_broker() -> None:
    """Empty the project's queue (Celery's default, ``celery``), left by an earlier run."""
    import redis

    redis.Redis.from_url(BROKER).delete("celery")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    require("Redis", "127.0.0.1", 6379)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _purge_broker()
    wheel = _build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    root = tmp_path / "site"
    root.mkdir()
    built = Project(root, venv, wheel)
    try:
        for page_name in tutorial():
            built.follow(page_name)
        yield built
    finally:
        built.log.close()
        _purge_broker()


class Servers:
    """The long-running commands of the tutorial, started as written (on a free port)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.port = sites.free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        (command,) = [c for c in self.project.servers if c.split()[0] == name]
        argv = shlex.split(command)
        argv[0] = str(self.project.venv / "bin" / argv[0])
        if name == "uvicorn":
            argv += ["--port", str(self.port)]
        log = (ARTIFACTS / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, cwd=self.project.root, env=self.project.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_for_worker(self) -> None:
        log = ARTIFACTS / "celery.log"
        deadline = time.monotonic() + 90
        while " ready." not in log.read_text(errors="replace"):
            assert self.processes["celery"].poll() is None, f"the worker exited; see {log}"
            assert time.monotonic() < deadline, f"the worker was not ready in 90 s; see {log}"
            time.sleep(0.2)

    def wait_for_site(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.processes["uvicorn"].poll() is None, f"uvicorn exited; see {ARTIFACTS}"
            try:
                with urllib.request.urlopen(self.url(path), timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            assert time.monotonic() < deadline, f"{path} did not answer 200 in 60 s"
            time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        for process in self.processes.values():
            sites.stop(process)


@pytest.fixture
def servers(project: Project) -> Iterator[Servers]:
    running = Servers(project)
    try:
        yield running
    finally:
        running.stop()


#: Collects what the widget reports, with what the page shows at that moment.
RECORDER = """() => {
  window.newcomerNoReload = true;
  window.newcomerUpdates = [];
  document.addEventListener("tasktrail:update", (event) => {
    const bar = document.querySelector("[data-tasktrail-status] progress");
    window.newcomerUpdates.push({
      state: event.detail.state,
      phase: event.detail.phase,
      percent: event.detail.progress ? event.detail.progress.percent : null,
      bar: bar && bar.offsetParent !== null && bar.hasAttribute("value") ? bar.value : null,
    });
  });
}"""


def test_the_tutorial_builds_a_site_whose_widget_goes_live(
    project: Project, servers: Servers, page: Any, request: pytest.FixtureRequest
) -> None:
    # The page the tutorial builds, served as it says, before any worker runs: the
    # import the visitor starts waits in the queue.
    servers.start("uvicorn")
    servers.wait_for_site("/imports/")
    page.goto(servers.url("/imports/"))
    page.get_by_role("button", name="Start an import").click()
    widget = page.locator("[data-tasktrail-status]")
    widget.wait_for()
    page.evaluate(RECORDER)
    page.wait_for_selector("[data-tasktrail-status][data-phase='waiting']")
    screenshot(page, request, "waiting")

    servers.start("celery")
    servers.wait_for_worker()
    page.wait_for_function(
        "() => window.newcomerUpdates.some((u) => u.phase === 'running' && u.bar > 0)"
    )
    screenshot(page, request, "running")
    page.wait_for_selector("[data-tasktrail-status][data-state='SUCCESS']", timeout=60_000)
    screenshot(page, request, "done")

    assert page.evaluate("window.newcomerNoReload") is True, "the page was reloaded"
    updates = page.evaluate("window.newcomerUpdates")
    phases = [u["phase"] for u in updates]
    assert "running" in phases, updates
    assert phases[-1] == "done", updates
    moving = [u["percent"] for u in updates if u["phase"] == "running" and u["percent"]]
    assert any(0 < percent < 100 for percent in moving), updates
    assert "10" in widget.locator(".tasktrail-outcome").inner_text()  # 10 rows imported

    _check_dashboard(page, servers, request)
    _check_transcripts(project, servers)


def _check_dashboard(page: Any, servers: Servers, request: pytest.FixtureRequest) -> None:
    """The staff user logs in where the tutorial says and finds the import on the dashboard."""
    page.goto(servers.url("/admin/login/?next=/tasktrail/"))
    page.fill("input[name=username]", STAFF[0])
    page.fill("input[name=password]", STAFF[1])
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(servers.url("/tasktrail/"))
    page.goto(servers.url("/tasktrail/tasks/"))
    assert "myapp.tasks.import_rows" in page.content()
    screenshot(page, request, "dashboard")
    # The admin's login page was styled: its CSS came from the ASGI application.
    static = [answer for answer in page.answers if "/static/" in answer]
    assert static, page.answers
    assert all(answer.startswith("200 ") for answer in static), static


def _check_transcripts(project: Project, servers: Servers) -> None:
    """The pages' ``curl`` commands print what the pages show (the task's id aside)."""
    cwd = project.root / "transcripts"
    cwd.mkdir()
    ids: dict[str, str] = {}  # the page's task id -> this run's
    assert project.later, "the tutorial shows no curl transcript"
    for command, shown, where in project.later:
        for theirs, ours in ids.items():
            command = command.replace(theirs, ours)
        command = command.replace(f"127.0.0.1:{DOCS_PORT}", f"127.0.0.1:{servers.port}")
        expected = [json.loads(line) for line in shown]
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30
            )
            printed = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            if len(printed) == len(expected) == 1 and "task_id" in expected[0]:
                ids[expected[0]["task_id"]] = printed[0]["task_id"]
                expected[0]["task_id"] = printed[0]["task_id"]
            if printed == expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the task may not have run yet: a reader runs it again
        assert done.returncode == 0, f"{where}: {command}\n{done.stderr}"
        assert printed == expected, f"{where}: {command} printed {done.stdout!r}"
