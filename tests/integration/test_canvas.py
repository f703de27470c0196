"""Groups, chains and chords as one unit, with a real worker: Celery's own results
(``GroupResult``, ``chord``, ``chain``), tasktrail's native chord join, and every
surface that shows a canvas (service, JSON, event stream, dashboard page)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import chain, chord, group
from celery.result import GroupResult

from tests.testapp import tasks
from tests.testapp.celeryapp import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _worker(worker: Any) -> None:
    """Every test here needs the worker process."""


def test_chord_joins_natively() -> None:
    result = chord(tasks.add.s(i, i) for i in range(5))(tasks.total.s())
    assert result.get(timeout=20) == 20
    # No chord_unlock task polled for it.
    from tasktrail.models import Task

    assert not Task.objects.filter(name="celery.chord_unlock").exists()


def test_group_apply_async_get() -> None:
    result = group(tasks.add.s(i, 1) for i in range(10)).apply_async()
    assert result.get(timeout=20) == [i + 1 for i in range(10)]
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None and [r.id for r in restored.results] == [
        r.id for r in result.results
    ]


def test_chain_of_three() -> None:
    result = chain(tasks.add.s(1, 1), tasks.add.s(2), tasks.add.s(3)).apply_async()
    assert result.get(timeout=20) == 7
