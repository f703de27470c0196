"""Every surface, every kind of viewer: nothing shown beyond the table in
docs/how-to/security.md, and everything that table allows each surface shows.

Tasks are written through the store as workers write them, each fact carrying a marker
of its own (``final-error-hidden``, ``host-shown.example``...). For each surface and
viewer, the markers found in what it answers must be exactly those the surface can show
(:data:`SHOWS`) and the documented table allows this viewer for that task.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

from tasktrail import access, options, store
from tests.conftest import heartbeat_row, make_user
from tests.docs.pages import DOCS
from tests.sse import events

pytestmark = pytest.mark.django_db(transaction=True)

#: The tasks: which flag each recorded, and what it went through.
FLAGS = {"hidden": options.HIDDEN, "shown": options.DEFAULT, "unknown": options.UNKNOWN}
FAILED = ("hidden", "shown", "unknown")
SUCCEEDED = {"secret": options.HIDDEN, "public": options.SHOWN}
RUNNING = "running"
BEAT_HOST = "host-beat.example"
OWNER_NAME = "ownerzq"

#: What each kind of fact looks like, for task ``key``.
MARKERS: dict[str, Callable[[str], str]] = {
    "result": lambda key: f"result-{key}",
    "error": lambda key: f"final-error-{key}",
    "retry_error": lambda key: f"retry-error-{key}",
    "traceback": lambda key: f"traceback-{key}",
    "args": lambda key: f"arg-{key}",
    "kwargs": lambda key: f"kwarg-{key}",
    "worker": lambda key: f"host-{key}.example",
    # Ten digits: the six-digit 900002 was once found on a right page in CI (digits of
    # something else: it never repeats locally), which six digits make likely among the
    # page's timestamps and tokens. This one still fits the pid column (int32).
    "pid": lambda key: str(2_071_830_000 + sorted(ALL).index(key)),
}
#: The part of the disclosure each kind of fact needs.
NEEDS = {
    "result": "outcome",
    "error": "outcome",
    "retry_error": "outcome",
    "traceback": "traceback",
    "args": "arguments",
    "kwargs": "arguments",
    "worker": "worker",
    "pid": "worker",
}
ALL = (*FAILED, *SUCCEEDED, RUNNING)
FLAG_OF = {**FLAGS, **SUCCEEDED, RUNNING: options.DEFAULT}


def _write(task_id: str, state: str, attempt: int, detail: Any = None, **values: Any) -> None:
    store.record(store.event(task_id, state, attempt, timezone.now(), **values), detail)
    store.flush()


def _task(key: str, owner: User, flag: str) -> str:
    task_id = f"tt-{key}-1"
    m = {kind: marker(key) for kind, marker in MARKERS.items()}
    _write(
        task_id,
        "PENDING",
        1,
        name="tests.testapp.tasks.add",
        owner_id=owner.pk,
        args=json.dumps([m["args"]]),
        kwargs=json.dumps({"k": m["kwargs"]}),
        show_result=flag,
        sent_at=timezone.now(),
    )
    on = {"worker": m["worker"], "worker_pid": int(m["pid"])}
    _write(task_id, "STARTED", 1, {"pid": int(m["pid"])}, started_at=timezone.now(), **on)
    if key == RUNNING:
        return task_id
    if key in SUCCEEDED:
        _write(task_id, "SUCCESS", 1, result=json.dumps({"r": m["result"]}), **on)
        return task_id
    retry = {"error_type": "ConnectionError", "error_message": m["retry_error"], "traceback": ""}
    _write(task_id, "RETRY", 1, retry, **retry)
    _write(task_id, "STARTED", 2, {"pid": int(m["pid"])}, **on)
    error = {"error_type": "ValueError", "error_message": m["error"], "traceback": m["traceback"]}
    _write(task_id, "FAILURE", 2, error, finished_at=timezone.now(), **error, **on)
    return task_id


# The documented table.


def documented() -> dict[str, access.Rule]:
    """docs/how-to/security.md's table, by its first cell."""
    table: dict[str, access.Rule] = {}
    for line in (DOCS / "how-to" / "security.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in {"Viewer", "---"} or not line.startswith("|"):
            continue

        def shown(text: str) -> access.Shown:
            text = re.sub(r"\*\*404\*\*.*", "no", text) or "no"
            return access.Shown(text)

        table[cells[0]] = access.Rule(*map(shown, cells[1:]))
    return table


#: Each kind of viewer, and the row of the table that describes it.
ROWS = {
    "anonymous": "anyone else",
    "link": "holders of a signed, unexpired link",
    "owner": "the owner (the user whose request sent it)",
    "viewer": "holders of `VIEW_PERMISSION` (`tasktrail.view_task`)",
    "staff": "staff (active `is_staff` or `is_superuser`)",
    "superuser": "staff (active `is_staff` or `is_superuser`)",
    "inactive staff": "anyone else",
}
#: Who the dashboard and the admin are for: operators. The owner and a link's holder see
#: their task on the status surfaces only.
OPERATORS = {"viewer", "staff", "superuser"}


def test_the_code_applies_the_documented_table() -> None:
    table = documented()
    assert set(ROWS.values()) == set(table), "security.md's rows changed: update ROWS"
    levels = {ROWS["staff"]: access.Level.STAFF, ROWS["anonymous"]: access.Level.NONE}
    for row, rule in table.items():
        assert access.RULES[levels.get(row, access.Level.VIEWER)] == rule, row


@dataclass(frozen=True)
class Viewer:
    kind: str
    user: User | None
    rule: access.Rule

    def allows(self, part: str, key: str, operator_surface: bool) -> bool:
        rule = self.rule
        if operator_surface and self.kind not in OPERATORS:
            rule = documented()["anyone else"]
        cell = rule.outcome if part == "outcome" else rule.internals
        if part == "task":
            cell = rule.task
        if cell is access.Shown.UNLESS_HIDDEN:
            # SHOW_RESULT is True here (see _settings): "default" shows, "" does not.
            return FLAG_OF[key] in {options.SHOWN, options.DEFAULT}
        return cell is access.Shown.ALWAYS


@pytest.fixture
def world() -> dict[str, Any]:
    owner = make_user(OWNER_NAME)
    users: dict[str, User | None] = {
        "anonymous": None,
        "link": None,
        "owner": owner,
        "viewer": make_user("viewerzq", "view_task"),
        # Holding the view permissions as well, for Django's admin to let them in.
        "staff": make_user("staffzq", "view_task", "view_worker", is_staff=True),
        "superuser": make_user("rootzq", is_superuser=True),
        "inactive staff": make_user("sleeperzq", "view_task", is_staff=True, is_active=False),
    }
    ids = {key: _task(key, owner, FLAG_OF[key]) for key in ALL}
    now = timezone.now()
    heartbeat_row(BEAT_HOST, 4321, now, now, now + timedelta(hours=1), 1, 0)
    table = documented()
    viewers = [Viewer(kind, user, table[ROWS[kind]]) for kind, user in users.items()]
    return {"ids": ids, "viewers": viewers}


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    # Inactive users stay logged in (as with AllowAllUsersModelBackend): being inactive
    # must take away what staff see, not only the session.
    backends = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    with override_settings(
        AUTHENTICATION_BACKENDS=backends, TASKTRAIL={"NOTIFY": "polling", "SHOW_RESULT": True}
    ):
        yield


# The surfaces: each answers a text and which task facts it can show at most.


def _client(viewer: Viewer) -> Client:
    client = Client()
    if viewer.user is not None:
        client.force_login(viewer.user)
    return client


def _get(viewer: Viewer, path: str) -> tuple[int, str]:
    response = _client(viewer).get(path)
    return response.status_code, response.content.decode()


def _first_event(viewer: Viewer, path: str) -> tuple[int, str]:
    async def fetch() -> tuple[int, str]:
        client = AsyncClient()
        if viewer.user is not None:
            await client.aforce_login(viewer.user)
        response = await client.get(path)
        if not response.streaming:
            return response.status_code, response.content.decode()
        async for event in events(response.streaming_content):
            if "data" in event:
                return response.status_code, json.dumps(event["data"])
        return response.status_code, ""

    return asyncio.run(fetch())


def _query(viewer: Viewer, task_id: str) -> str:
    return f"?token={access.sign(task_id)}" if viewer.kind == "link" else ""


@dataclass(frozen=True)
class Surface:
    name: str
    #: The facts of a task it can show, at most.
    shows: frozenset[str]
    #: For operators only (the dashboard, the admin)?
    operators: bool
    #: One task's view: (status, text); or ``None`` when it shows every task at once.
    one: Callable[[Viewer, str], tuple[int, str]] | None = None
    every: Callable[[Viewer, dict[str, str]], tuple[int, str]] | None = None


EVERYTHING = frozenset(MARKERS)
STATUS_FACTS = frozenset({"result", "error", "traceback", "args", "kwargs", "worker"})
ROW_FACTS = frozenset({"worker"})
SURFACES = [
    Surface(
        "status JSON",
        STATUS_FACTS,
        False,
        one=lambda v, t: _get(v, f"/tasktrail/tasks/{t}/status/{_query(v, t)}"),
    ),
    Surface(
        "event stream",
        STATUS_FACTS,
        False,
        one=lambda v, t: _first_event(v, f"/tasktrail/tasks/{t}/events/{_query(v, t)}"),
    ),
    Surface(
        "status page",
        frozenset(),
        False,
        one=lambda v, t: _get(v, f"/tasktrail/tasks/{t}/{_query(v, t)}"),
    ),
    Surface(
        "dashboard detail",
        EVERYTHING,
        True,
        one=lambda v, t: _get(v, f"/tasktrail/tasks/{t}/detail/"),
    ),
    Surface("dashboard overview", ROW_FACTS, True, every=lambda v, ids: _get(v, "/tasktrail/")),
    Surface("dashboard list", ROW_FACTS, True, every=lambda v, ids: _get(v, "/tasktrail/tasks/")),
    Surface(
        "dashboard live JSON",
        ROW_FACTS,
        True,
        every=lambda v, ids: _get(
            v, "/tasktrail/live/?" + "&".join(f"id={i}" for i in ids.values())
        ),
    ),
    Surface("admin list", ROW_FACTS, True, every=lambda v, ids: _get(v, "/admin/tasktrail/task/")),
    Surface(
        "admin task",
        # Its history table lists states and workers, not each attempt's error.
        EVERYTHING - {"retry_error"},
        True,
        one=lambda v, t: _get(v, f"/admin/tasktrail/task/{t}/change/"),
    ),
]
#: Only the overview lists running tasks, and only running ones.
LISTS_ONLY = {"dashboard overview": {RUNNING}}


def _expected(surface: Surface, viewer: Viewer, key: str) -> set[str]:
    facts = set(surface.shows)
    if key == RUNNING:
        facts &= {"args", "kwargs", "worker", "pid"}
    elif key in SUCCEEDED:
        facts -= {"error", "retry_error", "traceback"}
    else:
        facts -= {"result"}
    if surface.name in LISTS_ONLY and key not in LISTS_ONLY[surface.name]:
        return set()
    return {MARKERS[f](key) for f in facts if viewer.allows(NEEDS[f], key, surface.operators)}


def _present(text: str) -> set[str]:
    return {MARKERS[f](key) for key in ALL for f in MARKERS if MARKERS[f](key) in text}


def _admin_allows(viewer: Viewer, model: str = "task") -> bool:
    user = viewer.user
    return bool(
        user is not None
        and user.is_active
        and user.is_staff
        and user.has_perm(f"tasktrail.view_{model}")
    )


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_every_viewer_sees_on_every_surface_what_the_table_allows(
    world: dict[str, Any], surface: Surface
) -> None:
    ids: dict[str, str] = world["ids"]
    for viewer in world["viewers"]:
        sees_task = viewer.allows("task", "", surface.operators)
        if surface.name.startswith("admin") and not _admin_allows(viewer):
            sees_task = False
        answers: list[tuple[str, int, str]] = []
        if surface.one is not None:
            answers = [(key, *surface.one(viewer, ids[key])) for key in ALL]
        else:
            assert surface.every is not None
            answers = [("*", *surface.every(viewer, ids))]
        for key, status, text in answers:
            where = f"{surface.name}, {viewer.kind}, task {key}"
            if not sees_task:
                assert status in {302, 403, 404}, where
                assert _present(text) == set(), where
                continue
            assert status == 200, where
            keys = ALL if key == "*" else (key,)
            expected = set().union(*(_expected(surface, viewer, k) for k in keys))
            found = _present(text)
            assert found - expected == set(), f"{where}: shows what it must not"
            assert expected - found == set(), f"{where}: misses what it may show"
            owner_shown = OWNER_NAME in text
            assert owner_shown == (
                surface.name in {"dashboard detail", "admin task"}
                and (viewer.allows("owner", key, surface.operators))
            ), f"{where}: the owner"


def test_the_workers_table_shows_hostnames_to_staff_only(world: dict[str, Any]) -> None:
    for viewer in world["viewers"]:
        for path in ("/tasktrail/", "/admin/tasktrail/worker/"):
            text = _get(viewer, path)[1]
            sees = viewer.allows("worker", "", operator_surface=True) and (
                path == "/tasktrail/" or _admin_allows(viewer, "worker")
            )
            assert (BEAT_HOST in text) == sees, (path, viewer.kind)


def test_the_cli_shows_an_operator_everything(world: dict[str, Any]) -> None:
    """The CLI's user holds the database's credentials: staff, by the table's row."""

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("tasktrail", *args, stdout=out)
        return out.getvalue()

    ids = world["ids"]
    for key in FAILED:
        text = run("status", ids[key]) + run("status", "--json", ids[key])
        m = {kind: marker(key) for kind, marker in MARKERS.items()}
        for fact in ("error", "traceback", "worker", "pid", "args"):
            assert m[fact] in text, (key, fact)
    assert MARKERS["result"]("secret") in run("status", ids["secret"])
    assert BEAT_HOST in run("workers")
