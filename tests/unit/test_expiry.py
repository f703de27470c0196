"""Expiry on a real database: small batches, what is kept, the service and the command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasktrail import services, store
from tasktrail.models import GroupResult, Revocation, Task, Transition, Worker
from tasktrail.store import expiry, revocations
from tests.conftest import heartbeat_row

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
PAST = NOW - timedelta(seconds=1)


def finished(task_id: str, state: str = "SUCCESS", expires_at: object = PAST) -> None:
    store.record(store.event(task_id, "STARTED", 1, NOW - timedelta(minutes=1)))
    store.record(store.event(task_id, state, 1, NOW, expires_at=expires_at))


@pytest.fixture
def expired() -> None:
    """7 expired tasks, 1 kept, 1 unfinished; an expired group; gone worker; stale revocation."""
    for i in range(5):
        finished(f"ok{i}")
    finished("failed", "FAILURE")
    finished("revoked", "REVOKED")
    finished("fresh", expires_at=NOW + timedelta(days=1))
    store.record(store.event("running", "STARTED", 1, NOW))
    store.flush()
    store.save_group("g-old", [], NOW, PAST)
    store.save_group("g-new", [], NOW, NOW + timedelta(days=1))
    week_ago = NOW - timedelta(days=7)
    heartbeat_row("gone@h", 1, week_ago, week_ago, week_ago, 0, 0)
    heartbeat_row("here@h", 2, NOW, NOW, NOW + timedelta(seconds=30), 0, 0)
    revocations.add("revoked", NOW)
    revocations.add("never-recorded", NOW)


@pytest.mark.usefixtures("expired")
def test_a_dry_run_counts_and_deletes_nothing() -> None:
    assert services.cleanup(dry_run=True, now=NOW) == expiry.Expired(7, 1, 1, 1)
    assert Task.objects.count() == 9


@pytest.mark.usefixtures("expired")
def test_cleanup_deletes_expired_tasks_with_their_history_and_keeps_the_rest() -> None:
    # The revocation of the revoked task goes with it.
    assert services.cleanup(batch=2, now=NOW) == expiry.Expired(7, 1, 1, 2)
    assert set(Task.objects.values_list("task_id", flat=True)) == {"fresh", "running"}
    assert not Transition.objects.exclude(task_id__in=["fresh", "running"]).exists()
    assert Transition.objects.filter(task_id="fresh").exists()
    assert list(GroupResult.objects.values_list("group_id", flat=True)) == ["g-new"]
    assert list(Worker.objects.values_list("hostname", flat=True)) == ["here@h"]
    assert Revocation.objects.count() == 0
    assert services.cleanup(now=NOW) == expiry.Expired()


@pytest.mark.usefixtures("expired")
def test_a_deadline_stops_between_batches() -> None:
    deleted, done = expiry.delete_tasks(NOW, batch=2, deadline=0)
    assert (deleted, done) == (0, False)
    assert expiry.delete_tasks(NOW, batch=3) == (7, True)


@pytest.mark.usefixtures("expired")
def test_the_cleanup_command() -> None:
    out = io.StringIO()
    call_command("tasktrail", "cleanup", "--dry-run", stdout=out)
    assert out.getvalue() == (
        "Would delete 7 expired tasks (with their history), 1 group, 1 gone worker, "
        "1 stale revocation.\n"
    )
    out = io.StringIO()
    call_command("tasktrail", "cleanup", "--batch", "3", stdout=out)
    assert out.getvalue().startswith("Deleted 7 expired tasks (with their history), 1 group,")
    assert Task.objects.count() == 2


def test_the_command_refuses_a_bad_batch() -> None:
    with pytest.raises(CommandError, match="must be a whole number from 1 to"):
        call_command("tasktrail", "cleanup", "--batch", "0")


def test_celery_beat_need_not_schedule_its_cleanup() -> None:
    from tests.testapp.celeryapp import app

    assert app.backend.supports_autoexpire
