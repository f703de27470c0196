"""The task list's filters past what the databases store: reported on the page (as any
bad filter is), never a 500; the last values inside still list. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from .conftest import client_for, recorded

pytestmark = pytest.mark.django_db(transaction=True)

BIG = "1" + "0" * 40
REFUSED = [
    ({"since": "9999-12-31T23:59:59"}, "out of range"),
    ({"until": "9999-12-31T23:59:59"}, "out of range"),
    ({"since": "0001-01-01T00:00:00"}, "out of range"),
    ({"since": "0001-01-01T00:00:00+14:00"}, "out of range"),
    ({"until": "9999-12-31T23:59:59-14:00"}, "out of range"),
    ({"after": "9999-12-31T23:59:59+00:00,t1"}, "bad page cursor"),
    ({"after": "9999-12-31T23:59:59.999999-14:00,t1"}, "bad page cursor"),
    ({"after": "0001-01-01T00:00:00+14:00,t1"}, "bad page cursor"),
    ({"after": "2026-01-01T00:00:00+00:00,a\x00b"}, "Null characters"),
    ({"owner": BIG}, "unknown user"),
    ({"owner": str(2**63)}, "unknown user"),
    ({"owner": "²"}, "unknown user"),
    ({"owner": "a\x00b"}, "Null characters"),
    ({"name": "a\x00b"}, "Null characters"),
    ({"queue": "x" * 300}, "at most 255"),
    ({"id": "x" * 300}, "at most 255"),
    ({"id": "a\x00b"}, "Null characters"),
]


@pytest.mark.parametrize(("query", "reason"), REFUSED, ids=lambda v: str(v)[:40])
def test_a_filter_no_database_stores_is_reported_on_the_page(
    users: dict[str, User], query: dict[str, str], reason: str
) -> None:
    recorded("t1", "SUCCESS")
    response = client_for(users["staff"]).get("/tasktrail/tasks/", query)
    assert response.status_code == 400  # the page, with the reason by its field
    html = response.content.decode()
    assert reason in html
    assert 'href="/tasktrail/tasks/t1/detail/"' not in html  # the filter was not used


@pytest.mark.parametrize(
    "query",
    [
        {"since": "0001-01-02T00:00:00+00:00"},
        {"until": "9999-12-30T00:00:00+00:00"},
        {"after": "9999-12-30T00:00:00+00:00,t1"},
        {"owner": str(2**63 - 1)},
    ],
    ids=lambda v: str(v)[:40],
)
def test_the_last_values_inside_list(users: dict[str, User], query: dict[str, str]) -> None:
    recorded("t1", "SUCCESS")
    response = client_for(users["staff"]).get("/tasktrail/tasks/", query)
    assert response.status_code == 200
    assert 'class="tt-error"' not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "updated_at__gte=9999-12-31+23:59:59",
        "updated_at__lt=9999-12-31+23:59:59",
        "updated_at__gte=0001-01-01+00:00:00%2B14:00",
        "updated_at__gte=not-a-date",
    ],
)
def test_the_admins_date_filter_refuses_what_no_database_stores(
    users: dict[str, User], query: str
) -> None:
    recorded("t1", "SUCCESS")
    client = client_for(users["staff"])
    users["staff"].user_permissions.add(*_view_task())
    response = client.get(f"/admin/tasktrail/task/?{query}")
    # The admin's answer to a bad lookup: back to the list with ?e=1.
    assert (response.status_code, response["Location"]) == (302, "/admin/tasktrail/task/?e=1")
    assert client.get("/admin/tasktrail/task/?updated_at__gte=2026-01-01").status_code == 200


def _view_task() -> list[object]:
    from django.contrib.auth.models import Permission

    return list(Permission.objects.filter(codename="view_task"))
