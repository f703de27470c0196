"""Workers delete expired records by themselves, with no celery beat."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from tasktrail import store
from tasktrail.models import Task, Transition

from .conftest import WorkerProcess, unique_queue

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_deletes_expired_records_every_cleanup_interval(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker("cleaner", unique_queue("cleaner"), {"TT_CLEANUP_INTERVAL": "1"})
    # Expired after the worker started: its periodic cleanup, not the one at start.
    now = timezone.now()
    expired = [f"expired-{i}" for i in range(1200)]
    for task_id in expired:
        store.record(store.event(task_id, "STARTED", 1, now))
        store.record(store.event(task_id, "SUCCESS", 1, now, expires_at=now))
    store.record(store.event("kept", "SUCCESS", 1, now, expires_at=now + timedelta(days=1)))
    store.record(store.event("running", "STARTED", 1, now))
    store.flush()
    deadline = time.monotonic() + 20
    while Task.objects.filter(task_id__in=expired).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(Task.objects.values_list("task_id", flat=True)) == {"kept", "running"}
    assert not Transition.objects.filter(task_id__in=expired).exists()
