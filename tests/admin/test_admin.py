"""The admin: read-only, escaped, permission-checked, actions through the service layer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tasktrail import store
from tasktrail.store import audit
from tests.conftest import heartbeat_row, make_user, recorded

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def hostile() -> str:
    """A failed task whose arguments, error and traceback carry markup."""
    recorded("t-evil", "STARTED", name="app.evil", args=f'["{SCRIPT}"]')
    recorded(
        "t-evil",
        "FAILURE",
        error_type="ValueError",
        error_message=SCRIPT,
        traceback=f"Traceback (most recent call last):\nValueError: {SCRIPT}\n",
    )
    return "t-evil"


def login(client: Client, *permissions: str, staff: bool = True) -> User:
    user = make_user("op", *permissions, is_staff=staff)
    client.force_login(user)
    return user


@pytest.fixture
def superuser(client: Client) -> User:
    user = User.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def revokes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Celery's revoke calls, instead of sending them to a broker."""
    sent: list[tuple[str, bool]] = []

    def revoke(task_id: str, terminate: bool = False, signal: str = "SIGTERM") -> None:
        sent.append((task_id, terminate))

    monkeypatch.setattr(current_app.control, "revoke", revoke)
    return sent


@pytest.mark.usefixtures("superuser")
def test_the_change_page_shows_markup_escaped_only(client: Client, hostile: str) -> None:
    page = client.get(f"/admin/tasktrail/task/{hostile}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<pre>Traceback (most recent call last):\nValueError: &lt;script&gt;" in html
    assert "<td>STARTED</td>" in html and "<td>FAILURE</td>" in html


@pytest.mark.usefixtures("superuser")
def test_the_list_filters_and_searches(client: Client, hostile: str) -> None:
    recorded("t-ok", "SUCCESS", name="app.fine")
    recorded("t-half", "PROGRESS", progress_current=2, progress_total=4, progress_message="half")
    everything = client.get("/admin/tasktrail/task/").content.decode()
    assert '<td class="field-progress">2/4 (50%) half</td>' in everything
    failed = client.get("/admin/tasktrail/task/?state=FAILURE").content.decode()
    assert hostile in failed and "t-ok" not in failed
    by_id = client.get("/admin/tasktrail/task/?q=t-ok").content.decode()
    assert "app.fine" in by_id and hostile not in by_id
    # An id is matched exactly; "t-o" is no id, no state, no part of a name or a worker.
    assert "/t-ok/change/" not in client.get("/admin/tasktrail/task/?q=t-o").content.decode()


def test_the_search_takes_a_name_part_a_worker_or_a_state(client: Client) -> None:
    login(client, "view_task")
    recorded("t-build", "SUCCESS", name="app.reports.build_weekly", queue="reports", worker="w1@a")
    recorded("t-mail", "FAILURE", name="app.mail.send", queue="mail", worker="w2@b")
    now = timezone.now()
    heartbeat_row("w1@a", 10, now, now, now + timedelta(seconds=30))
    heartbeat_row("w2@b", 11, now, now, now + timedelta(seconds=30))

    def found(query: str) -> set[str]:
        html = client.get(f"/admin/tasktrail/task/?{query}").content.decode()
        return {t for t in ("t-build", "t-mail") if f"/{t}/change/" in html}

    assert found("q=reports.BUILD") == {"t-build"}
    assert found("q=w2@") == {"t-mail"}
    assert found("q=failure") == {"t-mail"}
    assert found("q=nothing") == set()
    assert found("name=app.mail.send") == {"t-mail"}
    assert found("queue=reports") == {"t-build"}
    html = client.get("/admin/tasktrail/task/").content.decode()
    # The filters list the known names and queues (from their small table).
    assert "?name=app.reports.build_weekly" in html and "?queue=mail" in html


@pytest.mark.usefixtures("superuser")
def test_rows_cannot_be_added_changed_or_deleted(client: Client, hostile: str) -> None:
    assert client.get("/admin/tasktrail/task/add/").status_code == 403
    assert client.get(f"/admin/tasktrail/task/{hostile}/delete/").status_code == 403
    page = client.post(f"/admin/tasktrail/task/{hostile}/change/", {"state": "SUCCESS"})
    assert page.status_code == 403
    assert store.get(hostile).state == "FAILURE"


def test_revoke_actions_go_through_the_service_layer(
    client: Client, superuser: User, revokes: list[tuple[str, bool]]
) -> None:
    recorded("t-wait", "PENDING", name="app.slow")
    recorded("t-run", "STARTED", name="app.slow", worker="w@h", worker_pid=7)
    changelist = "/admin/tasktrail/task/"
    page = client.post(
        changelist, {"action": "revoke", "_selected_action": ["t-wait"]}, follow=True
    )
    assert "Task t-wait: revoked" in page.content.decode()
    client.post(changelist, {"action": "revoke_and_terminate", "_selected_action": ["t-run"]})
    assert revokes == [("t-wait", False), ("t-run", True)]
    assert (store.get("t-wait").state, store.get("t-run").state) == ("REVOKED", "REVOKED")
    # Audited by the service, with who did it.
    [entry] = audit.actions("t-run")
    assert (entry.action, entry.by) == ("revoke_terminate", superuser.get_username())


def test_non_staff_are_sent_to_the_login_page(client: Client, hostile: str) -> None:
    login(client, "view_task", staff=False)
    page = client.get(f"/admin/tasktrail/task/{hostile}/change/")
    assert page.status_code == 302
    assert page["Location"].startswith("/admin/login/")


def test_staff_without_the_view_permission_get_403(client: Client, hostile: str) -> None:
    login(client)
    assert client.get("/admin/tasktrail/task/").status_code == 403
    assert client.get(f"/admin/tasktrail/task/{hostile}/change/").status_code == 403


def test_viewers_cannot_revoke(client: Client, revokes: list[tuple[str, bool]]) -> None:
    login(client, "view_task")
    recorded("t-wait", "PENDING")
    page = client.get("/admin/tasktrail/task/")
    assert page.status_code == 200 and b"Revoke selected" not in page.content
    client.post("/admin/tasktrail/task/", {"action": "revoke", "_selected_action": ["t-wait"]})
    assert revokes == []
    assert store.get("t-wait").state == "PENDING"


def test_an_action_without_the_csrf_token_is_refused(superuser: User) -> None:
    recorded("t-wait", "PENDING")
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    page = client.post(
        "/admin/tasktrail/task/", {"action": "revoke", "_selected_action": ["t-wait"]}
    )
    assert page.status_code == 403
    assert store.get("t-wait").state == "PENDING"


@pytest.mark.usefixtures("superuser")
def test_workers_show_whether_they_are_alive(client: Client) -> None:
    now = timezone.now()  # not the module's NOW: alive is judged at the request
    heartbeat_row("up@h", 1, now, now, now + timedelta(hours=1), 2, 0)
    heartbeat_row("quiet@h", 2, now, now, now - timedelta(seconds=1), 0, 0)
    html = client.get("/admin/tasktrail/worker/").content.decode()
    assert '<td class="field-status">alive</td>' in html
    assert '<td class="field-status">silent</td>' in html
