"""Every id Celery accepts works on every surface; ids no table can hold are "not found".

Celery lets callers choose ids, so one may hold ``/``, spaces, ``%``, ``..`` or any
Unicode: each must open its status, page, stream, detail, live row, list entry, search,
actions, admin page, widget and ``status_url``. An id with a NUL or longer than the
column is a 404 (never a ``DataError`` from PostgreSQL), for anonymous visitors and
staff alike. Run on SQLite and on PostgreSQL (``TT_DB=postgres``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.urls import resolve, reverse

import tasktrail
from tasktrail import ids
from tests.conftest import client_for, make_user, recorded

from .conftest import Server

pytestmark = pytest.mark.django_db(transaction=True)

ODD = [
    "a/b",
    "a/b/status",
    "/leading",
    "trailing/",
    "..",
    ".",
    "a/../b",
    "with space",
    "100%",
    "a%2Fb",
    "q?x=1#frag",
    "back\\slash",
    "ünï/cödé ✓ 日本",
    "x" * ids.MAX_LENGTH,
]
#: Text no table holds: a NUL (PostgreSQL refuses it), one character over the column.
UNSTORABLE = ["a\x00b", "\x00", "x" * (ids.MAX_LENGTH + 1), "y" * 300]


@pytest.fixture
def staff() -> User:
    return make_user("staff", "change_task", is_staff=True)


def _path(url: str) -> str:
    """The path of ``url`` as a server hands it to Django: percent-decoded once."""
    return unquote(urlsplit(url).path)


def _opens(client: Client, url: str, task_id: str, view: str) -> None:
    """``url`` resolves to ``view`` for ``task_id``, and answers 200."""
    match = resolve(_path(url))
    assert (match.view_name, match.kwargs) == (f"tasktrail:{view}", {"task_id": task_id}), url
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)


def _cookie(client: Client) -> str:
    return "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())


def _served(server: Server, url: str, client: Client) -> int:
    """The status uvicorn answers for ``url`` (a stream: once its first chunk came)."""
    return server.get(url, _cookie(client)).status


@pytest.mark.parametrize("task_id", ODD)
def test_an_odd_id_opens_on_every_surface(
    staff: User, task_id: str, uvicorn_server: Server
) -> None:
    recorded(task_id, "STARTED", name="app.odd", worker="w@h", parent_id=task_id)
    recorded(task_id, "SUCCESS", name="app.odd", result="1", parent_id=task_id)
    client = client_for(staff)
    for view in ("status", "page", "task_detail"):
        _opens(client, reverse(f"tasktrail:{view}", args=[task_id]), task_id, view)
    assert client.get(reverse("tasktrail:status", args=[task_id])).json()["id"] == task_id
    for view in ("status", "page", "events", "task_detail"):
        assert _served(uvicorn_server, reverse(f"tasktrail:{view}", args=[task_id]), client) == 200
    live = client.get(reverse("tasktrail:live"), {"id": task_id}).json()
    assert list(live["tasks"]) == [task_id]

    # The overview, the list and the search link to the detail of this very id.
    for page in (client.get("/tasktrail/"), client.get("/tasktrail/tasks/")):
        assert page.status_code == 200
    listed = client.get("/tasktrail/tasks/").content.decode()
    detail = reverse("tasktrail:task_detail", args=[task_id])
    assert f'href="{detail}"' in listed
    found = client.get("/tasktrail/tasks/", {"id": task_id})
    assert (found.status_code, found["Location"]) == (302, detail)

    # The detail's own links (the parent here is the task itself) and its actions.
    html = client.get(detail).content.decode()
    assert f'Parent: <a href="{detail}"' in html
    assert f'action="{reverse("tasktrail:retry", args=[task_id])}"' in html  # it finished
    for action in ("retry", "revoke"):
        url = reverse(f"tasktrail:{action}", args=[task_id])
        confirm = client.post(url)  # unconfirmed: the confirmation page, posting back here
        assert confirm.status_code == 200
        assert f'action="{url}"' in confirm.content.decode()
        assert f'href="{detail}"' in confirm.content.decode()

    admin = client.get(f"/admin/tasktrail/task/{_admin_quote(task_id)}/change/")
    assert admin.status_code == 200
    assert client.get("/admin/tasktrail/task/", {"q": task_id}).status_code == 200


def _admin_quote(task_id: str) -> str:
    from django.contrib.admin.utils import quote

    return str(quote(task_id))


@pytest.mark.parametrize("task_id", ODD)
def test_the_widget_and_status_url_of_an_odd_id_open_for_anyone_holding_them(
    task_id: str, uvicorn_server: Server
) -> None:
    recorded(task_id, "STARTED", name="app.odd", sent_at=None)
    html = Template("{% load tasktrail %}{% tasktrail_status task_id signed=True %}").render(
        Context({"task_id": task_id})
    )
    status_url = html.split('data-status-url="')[1].split('"')[0].replace("&amp;", "&")
    _opens(Client(), status_url, task_id, "status")
    link = tasktrail.status_url(task_id)
    _opens(Client(), link, task_id, "page")
    assert _served(uvicorn_server, link.replace("/?", "/events/?"), Client()) == 200
    assert _served(uvicorn_server, link, Client()) == 200


@pytest.mark.parametrize("task_id", UNSTORABLE)
@pytest.mark.parametrize("who", ["anonymous", "staff"])
def test_an_id_no_table_holds_is_not_found_everywhere(
    staff: User, who: str, task_id: str, uvicorn_server: Server
) -> None:
    user = staff if who == "staff" else None
    client = client_for(user)
    for view in ("status", "page", "task_detail"):
        url = reverse(f"tasktrail:{view}", args=[task_id])
        assert client.get(url).status_code == 404, (view, who)
    for view in ("status", "page", "events", "task_detail"):
        assert _served(uvicorn_server, reverse(f"tasktrail:{view}", args=[task_id]), client) == 404
    for action in ("retry", "revoke"):
        url = reverse(f"tasktrail:{action}", args=[task_id])
        answer = client.post(url, {"confirmed": "yes"})
        assert answer.status_code == 404, (action, who)
    live = client.get(reverse("tasktrail:live"), {"id": task_id})
    assert live.status_code == 404 if user is None else live.json() == {"tasks": {}}
    search = client.get("/tasktrail/tasks/", {"id": task_id})
    # The search form refuses such an id (a NUL, past the length) as any bad field: 400.
    assert search.status_code == (404 if user is None else 400)
    admin = client.get(f"/admin/tasktrail/task/{_admin_quote(task_id)}/change/")
    # The admin's answer for a missing object: back to its index, or the login page.
    assert admin.status_code == 302
    assert client.get("/admin/tasktrail/task/", {"q": task_id}).status_code in (200, 302)


def test_a_parent_and_children_with_a_slash_link_to_their_own_detail(staff: User) -> None:
    recorded("child/1", "SUCCESS", parent_id="parent/1", root_id="root/../1")
    recorded("parent/1", "SUCCESS", children='[[["child/1", null], null]]')
    client = client_for(staff)
    html = client.get(reverse("tasktrail:task_detail", args=["child/1"])).content.decode()
    for linked in ("parent/1", "root/../1"):
        assert f'href="{reverse("tasktrail:task_detail", args=[linked])}"' in html
    _opens(client, reverse("tasktrail:task_detail", args=["parent/1"]), "parent/1", "task_detail")
    parent = client.get(reverse("tasktrail:task_detail", args=["parent/1"])).content.decode()
    assert f'href="{reverse("tasktrail:task_detail", args=["child/1"])}"' in parent


def test_the_cli_takes_every_storable_id() -> None:
    import io

    from django.core.management import CommandError, call_command

    recorded("a b/c", "SUCCESS")
    out = io.StringIO()
    call_command("tasktrail", "status", "a b/c", stdout=out)
    assert "a b/c" in out.getvalue()
    with pytest.raises(CommandError, match="malformed task id"):
        call_command("tasktrail", "status", "z" * (ids.MAX_LENGTH + 1))


@pytest.mark.parametrize("task_id", UNSTORABLE)
def test_an_event_for_an_id_no_table_holds_does_not_hold_up_the_others(
    task_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    from django.utils import timezone

    from tasktrail import store

    now = timezone.now()
    store.record(store.event("stored-beside", "STARTED", 1, now))
    store.record(store.event(task_id, "STARTED", 1, now))
    store.flush()  # on PostgreSQL the bad row made the whole flush fail, every time
    assert list(store.get_many(["stored-beside"])) == ["stored-beside"]
    assert "not recording task id" in caplog.text


def test_the_overview_lists_odd_ids_running_stuck_and_lost(staff: User) -> None:
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(hours=2)
    recorded("run/1 ✓", "STARTED", name="app.odd", worker="w@h")
    recorded("stuck/..", "PENDING", long_ago, name="app.odd")
    recorded("lost/100%", "LOST", name="app.odd", worker="w@h")
    html = client_for(staff).get("/tasktrail/").content.decode()
    for task_id in ("run/1 ✓", "stuck/..", "lost/100%"):
        assert f'href="{reverse("tasktrail:task_detail", args=[task_id])}"' in html, task_id
