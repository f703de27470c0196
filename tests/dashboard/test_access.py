"""Who sees the dashboard: staff and holders of the view permission; everyone else 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from .conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ("/tasktrail/", "/tasktrail/tasks/", "/tasktrail/live/?id={}")
TASK_PAGES = ("/tasktrail/tasks/{}/detail/",)
ACTIONS = ("/tasktrail/tasks/{}/retry/", "/tasktrail/tasks/{}/revoke/")


@pytest.mark.parametrize("who", [None, "plain"])
def test_anonymous_and_plain_users_get_404_everywhere_even_the_owner(
    users: dict[str, User], failed: str, who: str | None
) -> None:
    client = client_for(users[who] if who else None)
    for path in (*PAGES, *TASK_PAGES):
        assert client.get(path.format(failed)).status_code == 404, path
    for path in ACTIONS:
        assert client.post(path.format(failed), {"confirmed": "yes"}).status_code == 404, path


@pytest.mark.parametrize("who", ["staff", "viewer", "operator"])
def test_staff_and_permission_holders_see_every_page(
    users: dict[str, User], failed: str, who: str
) -> None:
    client = client_for(users[who])
    for path in (*PAGES, *TASK_PAGES):
        response = client.get(path.format(failed))
        assert response.status_code == 200, path
        assert response["Cache-Control"] == "no-store"


def test_an_unknown_task_is_404_for_staff_too(users: dict[str, User], failed: str) -> None:
    client = client_for(users["staff"])
    assert client.get("/tasktrail/tasks/nope/detail/").status_code == 404
    assert client.get("/tasktrail/live/?id=nope").json() == {"tasks": {}}


@pytest.mark.parametrize("who", ["staff", "viewer"])
def test_acting_needs_the_change_permission(users: dict[str, User], failed: str, who: str) -> None:
    client = client_for(users[who])
    for path in ACTIONS:
        assert client.post(path.format(failed), {"confirmed": "yes"}).status_code == 403, path
    page = client.get(f"/tasktrail/tasks/{failed}/detail/").content.decode()
    assert "/retry/" not in page and "/revoke/" not in page


def test_actions_are_post_only(users: dict[str, User], failed: str) -> None:
    client = client_for(users["operator"])
    for path in ACTIONS:
        assert client.get(path.format(failed)).status_code == 405, path


def test_permission_holders_do_not_see_arguments_or_tracebacks(
    users: dict[str, User], failed: str
) -> None:
    viewer = client_for(users["viewer"]).get(f"/tasktrail/tasks/{failed}/detail/")
    staff = client_for(users["staff"]).get(f"/tasktrail/tasks/{failed}/detail/")
    for html in (viewer.content.decode(), staff.content.decode()):
        assert "ValueError" in html
    assert 'data-json="args"' not in viewer.content.decode()
    assert "Traceback" not in viewer.content.decode()
    assert 'data-json="args"' in staff.content.decode()
    assert "Traceback (most recent call last)" in staff.content.decode()


def test_only_staff_may_list_someones_tasks(users: dict[str, User], failed: str) -> None:
    """Filtering by owner would tell a permission holder who owns what."""
    path = "/tasktrail/tasks/?owner=plain"
    viewer = client_for(users["viewer"]).get(path).content.decode()
    staff = client_for(users["staff"]).get(path).content.decode()
    assert 'name="owner"' in staff and 'name="owner"' not in viewer
    other = client_for(users["staff"]).get("/tasktrail/tasks/?owner=staff").content.decode()
    assert failed in staff and failed not in other
    # For the permission holder the filter is not applied: the list does not narrow.
    ignored = client_for(users["viewer"]).get("/tasktrail/tasks/?owner=staff").content.decode()
    assert failed in ignored
