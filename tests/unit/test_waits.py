"""Queue wait's one rule (tasktrail.store.waits): the Python, the SQL of PostgreSQL's
flush, and the two readers (the metrics' histogram, the dashboard's timings) agreeing
on the same tasks, on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tasktrail import store
from tasktrail.store import overview, rollup, waits

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def test_a_first_attempt_waits_from_its_sending_a_retry_from_when_it_became_due() -> None:
    noted, retried = T0 + 10 * S, T0 + 4 * S
    assert waits.became_due(1, T0) == T0
    assert waits.became_due(0, T0) == T0  # an attempt nobody numbered is the first
    # A retry: the due its worker noted, else when it was retried, never the sending.
    assert waits.became_due(2, T0, noted, retried) == noted
    assert waits.became_due(2, T0, None, retried) == retried
    assert waits.became_due(3, T0) is None
    assert waits.seconds(T0, T0 + 1.5 * S) == 1.5
    # A producer's clock ahead of the worker's: no negative wait.
    assert waits.seconds(T0, T0 - S) == 0.0
    assert waits.seconds(None, T0) is None and waits.seconds(T0, None) is None


#: (attempt, sent_at, started_at) rows the flush's SQL and the Python both read.
ROWS = [
    (1, T0, T0 + 0.25 * S),
    (1, T0, T0 + timedelta(microseconds=1)),
    (1, T0, T0 - 2 * S),
    (0, T0, T0 + 3 * S),
    (2, T0, T0 + 5 * S),
    (1, None, T0),
    (1, T0, None),
    (1, T0, T0 + timedelta(hours=2, microseconds=7)),
]


def test_the_flushs_sql_computes_what_the_python_does() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL's flush computes the wait in SQL (TT_DB=postgres)")
    values = ", ".join(["(%s, %s::int, %s::timestamptz, %s::timestamptz)"] * len(ROWS))
    params = [v for i, row in enumerate(ROWS) for v in (i, *row)]
    with connection.cursor() as cursor:
        # rollup's own expression, over columns named as in its statement.
        cursor.execute(
            f"SELECT n, {rollup._WAIT_SQL} FROM (VALUES {values}) "
            "AS up(n, attempt, sent_at, started_at) ORDER BY n",
            params,
        )
        found = [wait for _, wait in cursor.fetchall()]
    expected = [waits.seconds(waits.became_due(a, sent), started) for a, sent, started in ROWS]
    assert [None if w is None else pytest.approx(w, abs=1e-6) for w in expected] == found
    assert expected[:3] == [0.25, 0.000001, 0.0] and expected[4:7] == [None, None, None]


def _histogram() -> dict[str, tuple[int, float]]:
    """The wait histogram's count and sum per task name."""
    found: dict[str, tuple[int, float]] = {}
    for c in rollup.read():
        if c.kind == rollup.WAIT:
            n, total = found.get(c.name, (0, 0.0))
            found[c.name] = (n + c.count, total + c.total)
    return found


def _task(name: str, sent: datetime | None, started: datetime, attempt: int = 1) -> None:
    if sent is not None:
        store.record(store.event(name, "PENDING", 1, sent, name=name, sent_at=sent))
    store.record(store.event(name, "STARTED", attempt, started, name=name, started_at=started))
    done = started + 0.01 * S
    store.record(store.event(name, "SUCCESS", attempt, done, name=name, finished_at=done))


def test_the_histogram_and_the_timings_read_the_same_waits() -> None:
    t0 = timezone.now() - timedelta(minutes=5)
    # One task per name, so each name's p50 is that task's wait.
    _task("app.quick", t0, t0 + 0.2 * S)
    _task("app.skewed", t0, t0 - 0.5 * S)
    # Outcome first, the producer's sending in a later flush.
    _task("app.late_sending", None, t0 + 1.3 * S)
    store.flush()
    store.record(store.event("app.late_sending", "PENDING", 1, t0, sent_at=t0))
    # Retried with a 3 s countdown: due at t0 + 3.3 s, started 50 ms later.
    mail, due = "app.send_email", t0 + 3.3 * S
    store.record(store.event(mail, "PENDING", 1, t0, name=mail, sent_at=t0))
    store.record(store.event(mail, "RETRY", 1, t0 + 0.3 * S, next_retry_at=due))
    started = due + 0.05 * S
    store.record(
        store.event(mail, "STARTED", 2, started, started_at=started),
        {"pid": 1, "due": due.isoformat()},
    )
    store.record(store.event(mail, "SUCCESS", 2, started, finished_at=started))
    store.flush()

    timed = {t.name: t.wait["p50"] for t in overview.timings(timezone.now())}
    histogram = _histogram()
    first_attempts = {"app.quick": 0.2, "app.skewed": 0.0, "app.late_sending": 1.3}
    for name, wait in first_attempts.items():
        assert histogram[name] == (1, pytest.approx(wait, abs=0.001)), name
        assert timed[name] == pytest.approx(wait, abs=0.001), name
    # The retried task: its countdown counts in neither. The timings read when its last
    # attempt became due from its history; a flush cannot, so the histogram leaves it out.
    assert timed[mail] == pytest.approx(0.05, abs=0.001)
    assert mail not in histogram
