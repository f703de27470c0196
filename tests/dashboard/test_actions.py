"""Retry and revoke through the dashboard: real broker, real store, audited, CSRF-checked."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

import tasktrail
from tasktrail import services, store
from tasktrail.store import audit
from tests.conftest import require

from .conftest import QUEUE, client_for, recorded

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _broker() -> None:
    # Retry sends a message; revoke broadcasts one: both need the tests' Redis broker.
    require("Redis", "127.0.0.1", 6379)


@pytest.fixture
def operator(users: dict[str, User]) -> Client:
    return client_for(users["operator"])


def test_without_confirmation_the_server_asks_and_does_nothing(
    operator: Client, failed: str
) -> None:
    page = operator.post(f"/tasktrail/tasks/{failed}/retry/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<input type="hidden" name="confirmed" value="yes">' in html
    assert audit.actions(failed) == []


def test_retry_sends_a_new_linked_task_and_audits_it(
    operator: Client, failed: str, users: dict[str, User]
) -> None:
    response = operator.post(f"/tasktrail/tasks/{failed}/retry/", {"confirmed": "yes"})
    assert response.status_code == 302
    new_id = re.fullmatch(r"/tasktrail/tasks/([^/]+)/detail/", response["Location"])[1]  # type: ignore[index]
    store.sync()
    original, retried = tasktrail.get(failed), tasktrail.get(new_id)
    assert retried.state == "PENDING"
    assert (retried.name, retried.args, retried.kwargs, retried.queue) == (
        original.name,
        original.args,
        original.kwargs,
        QUEUE,
    )
    assert retried.owner_id == users["plain"].pk  # still its owner's to follow
    assert original.state == "FAILURE"  # the original is untouched
    [entry] = audit.actions(failed)
    assert (entry.action, entry.by, entry.detail["retry_id"]) == ("retry", "operator", new_id)
    [link] = audit.actions(new_id)
    assert (link.action, link.detail) == ("retry_of", {"original_id": failed})
    assert [t.state for t in tasktrail.history(failed)] == ["FAILURE"]  # audit kept apart
    new_page = operator.get(response["Location"]).content.decode()
    assert (
        f'data-link="retry-of">Retry of: <a href="/tasktrail/tasks/{failed}/detail/">' in new_page
    )
    old_page = operator.get(f"/tasktrail/tasks/{failed}/detail/").content.decode()
    assert 'data-action="retry"' in old_page and "<span data-by>operator</span>" in old_page


def test_a_running_task_cannot_be_retried(operator: Client) -> None:
    recorded("t-running", "STARTED", name="app.x", args="[]", kwargs="{}")
    response = operator.post("/tasktrail/tasks/t-running/retry/", {"confirmed": "yes"})
    assert response.status_code == 409
    assert "only a finished task can be retried" in response.content.decode()


def test_redacted_arguments_refuse_a_retry() -> None:
    recorded("t-secret", "FAILURE", name="app.x", args="[]", kwargs='{"password": "[redacted]"}')
    with pytest.raises(services.ActionRefused, match="not stored in full"):
        services.retry("t-secret")


def test_revoke_records_revoked_and_who(operator: Client) -> None:
    recorded("t-waiting", "PENDING", name="app.x", queue=QUEUE)
    response = operator.post("/tasktrail/tasks/t-waiting/revoke/", {"confirmed": "yes"})
    assert response.status_code == 302
    assert tasktrail.get("t-waiting").state == "REVOKED"
    [entry] = audit.actions("t-waiting")
    assert (entry.action, entry.by, entry.detail) == ("revoke", "operator", {"state": "PENDING"})


def test_revoke_and_terminate_stops_a_running_task(operator: Client) -> None:
    recorded("t-busy", "STARTED", name="app.x", worker="nobody@h")
    data = {"confirmed": "yes", "terminate": "yes"}
    assert operator.post("/tasktrail/tasks/t-busy/revoke/", data).status_code == 302
    record = tasktrail.get("t-busy")
    assert record.state == "REVOKED"
    assert record.error is not None and "terminated with SIGTERM" in record.error.message
    [entry] = audit.actions("t-busy")
    assert (entry.action, entry.detail["signal"]) == ("revoke_terminate", "SIGTERM")


def test_csrf_is_enforced_on_actions(users: dict[str, User], failed: str) -> None:
    client = client_for(users["operator"], enforce_csrf_checks=True)
    refused = client.post(f"/tasktrail/tasks/{failed}/retry/", {"confirmed": "yes"})
    assert refused.status_code == 403
    assert audit.actions(failed) == []
    page = client.get(f"/tasktrail/tasks/{failed}/detail/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    data = {"confirmed": "yes", "csrfmiddlewaretoken": token[1]}
    assert client.post(f"/tasktrail/tasks/{failed}/retry/", data).status_code == 302
    assert [a.action for a in audit.actions(failed)] == ["retry"]
