"""django.tasks' priority on Redis, with a real worker: higher runs first (kombu serves
0 first on Redis, so the scale is turned over; tasktrail.tasks.mapping)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

import tasktrail
from tests import brokers
from tests.integration.conftest import unique_queue, wait_for

from . import djtasks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_higher_priority_runs_first_on_redis(start_worker: Callable[..., Any]) -> None:
    if not brokers.is_redis(settings.CELERY_BROKER_URL):
        pytest.skip("priorities on RabbitMQ need queues declared with x-max-priority")
    queue = unique_queue("prio")
    # Sent before any worker reads the queue, low ones first.
    low = [djtasks.add.using(queue_name=queue, priority=-100).enqueue(i, 0) for i in range(3)]
    high = [djtasks.add.using(queue_name=queue, priority=100).enqueue(i, 1) for i in range(3)]
    start_worker("prio", queue, concurrency=1)
    ended = [wait_for(r.id, lambda r: r.ready) for r in low + high]
    order = sorted(ended, key=lambda r: r.started_at)  # type: ignore[arg-type,return-value]
    assert {r.id for r in order[:3]} == {r.id for r in high}
    assert tasktrail.get(high[0].id).queue == queue
