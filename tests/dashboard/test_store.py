"""The dashboard's queries on real rows: capped counts, buckets, percentiles, bounded scans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasktrail import store
from tasktrail.store import overview, queries

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()


def _write(*events: tuple[str, str, timedelta, dict[str, object]]) -> None:
    for task_id, state, ago, values in events:
        store.record(store.event(task_id, state, 1, NOW - ago, **values))
    store.sync()


def test_counts_nest_windows_and_say_when_a_cap_cut_them(monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        ("a", "SUCCESS", timedelta(minutes=1), {}),
        ("b", "FAILURE", timedelta(minutes=2), {}),
        ("c", "SUCCESS", timedelta(hours=3), {}),
        ("d", "PENDING", timedelta(days=3), {}),
        ("e", "SUCCESS", timedelta(days=9), {}),
    )
    counts = {c.window: c for c in overview.counts(NOW)}
    assert counts["hour"].by_state == {"FAILURE": 1, "SUCCESS": 1}
    assert counts["day"].by_state == {"FAILURE": 1, "SUCCESS": 2}
    assert counts["week"].by_state == {"FAILURE": 1, "PENDING": 1, "SUCCESS": 2}
    assert all(c.exact for c in counts.values())
    monkeypatch.setattr(overview, "SAMPLE", 3)
    capped = {c.window: c for c in overview.counts(NOW)}
    assert (capped["hour"].total, capped["hour"].exact) == (2, True)
    assert (capped["day"].total, capped["day"].exact) == (3, False)
    assert (capped["week"].total, capped["week"].exact) == (3, False)


def test_throughput_buckets_finished_tasks_and_failures() -> None:
    # Three tasks inside one minute's bucket (buckets start on the minute).
    minute = NOW.replace(second=0, microsecond=0) - timedelta(minutes=3)

    def into_it(seconds: int) -> timedelta:
        return NOW - (minute + timedelta(seconds=seconds))

    _write(
        ("ok1", "SUCCESS", into_it(10), {}),
        ("ok2", "SUCCESS", into_it(20), {}),
        ("bad", "FAILURE", into_it(30), {}),
        ("lost", "LOST", timedelta(minutes=10), {}),
        ("run", "STARTED", timedelta(minutes=2), {}),
        ("old", "SUCCESS", timedelta(hours=2), {}),
    )
    result = overview.throughput("hour", NOW)
    assert len(result.buckets) == 60 and result.counted_from is None
    busy = [b for b in result.buckets if b.finished]
    assert sorted((b.finished, b.failed) for b in busy) == [(1, 1), (3, 1)]
    assert sum(b.finished for b in result.buckets) == 4
    assert next(b for b in busy if b.finished == 3).failure_rate == pytest.approx(1 / 3)


def test_one_scan_serves_counts_and_chart_and_a_cut_one_says_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    minute = NOW.replace(second=0, microsecond=0)
    _write(
        ("new", "SUCCESS", NOW - (minute - timedelta(minutes=1, seconds=-5)), {}),
        ("run", "STARTED", NOW - (minute - timedelta(minutes=2, seconds=-5)), {}),
        ("mid", "FAILURE", NOW - (minute - timedelta(minutes=5, seconds=-5)), {}),
        ("old", "SUCCESS", NOW - (minute - timedelta(minutes=9, seconds=-5)), {}),
    )
    counts, chart = overview.summary("hour", NOW)
    assert counts == overview.counts(NOW) and chart == overview.throughput("hour", NOW)
    assert {c.window: c.total for c in counts} == {"hour": 4, "day": 4, "week": 4}
    assert (sum(b.finished for b in chart.buckets), chart.counted_from) == (3, None)
    # The latest 3 rows: the running one takes a place in the sample, not in the chart.
    monkeypatch.setattr(overview, "SAMPLE", 3)
    counts, chart = overview.summary("hour", NOW)
    assert [(c.total, c.exact) for c in counts] == [(3, False)] * 3
    assert sum(b.finished for b in chart.buckets) == 2
    assert chart.counted_from == minute - timedelta(minutes=5)
    assert sum(b.failed for b in chart.buckets if b.start >= chart.counted_from) == 1


def test_timings_are_percentiles_per_name() -> None:
    for i in range(10):
        sent = NOW - timedelta(minutes=30)
        started = sent + timedelta(seconds=i + 1)
        finished = started + timedelta(seconds=10 * (i + 1))
        values = {"name": "app.t", "sent_at": sent, "started_at": started, "finished_at": finished}
        _write((f"t{i}", "SUCCESS", timedelta(minutes=1), values))
    [timing] = overview.timings(NOW)
    assert (timing.name, timing.count) == ("app.t", 10)
    assert timing.wait == {"p50": 5.0, "p90": 9.0, "p99": 10.0}
    assert timing.run == {"p50": 50.0, "p90": 90.0, "p99": 100.0}


def test_stuck_leaves_out_retries_waiting_for_their_countdown() -> None:
    _write(
        ("stuck", "PENDING", timedelta(hours=1), {}),
        ("fresh", "PENDING", timedelta(minutes=1), {}),
        ("later", "RETRY", timedelta(hours=1), {"next_retry_at": NOW + timedelta(hours=1)}),
        ("overdue", "RETRY", timedelta(hours=1), {"next_retry_at": NOW - timedelta(minutes=30)}),
    )
    assert [t.id for t in overview.stuck(NOW)] == ["overdue", "stuck"]


def test_a_filtered_page_scans_a_bounded_stretch_then_searches_on() -> None:
    # Ten tasks, newest first; only the 2nd and 9th are "rare".
    _write(
        *(
            (f"k{i}", "SUCCESS", timedelta(seconds=i), {"name": "rare" if i in (1, 8) else "busy"})
            for i in range(10)
        )
    )
    where = queries.TaskFilter(name="rare")
    first = queries.page(where, limit=5, scan=4)
    assert [t.id for t in first.tasks] == ["k1"] and first.scan_stopped
    second = queries.page(where, limit=5, after=first.next, scan=4)
    assert second.tasks == [] and second.scan_stopped
    third = queries.page(where, limit=5, after=second.next, scan=4)
    assert [t.id for t in third.tasks] == ["k8"]
    assert third.next is None and not third.scan_stopped


@pytest.mark.parametrize("state", ["FAILURE", "PENDING"])
def test_a_state_with_an_index_of_its_own_fills_its_pages_without_a_scan(state: str) -> None:
    # Every third task is in ``state``; a scan of 4 rows would stop short of them.
    _write(
        *(
            (f"s{i}", state if i % 3 == 0 else "SUCCESS", timedelta(seconds=i), {})
            for i in range(12)
        )
    )
    where = queries.TaskFilter(state=state)
    first = queries.page(where, limit=2, scan=4)
    assert [t.id for t in first.tasks] == ["s0", "s3"] and not first.scan_stopped
    second = queries.page(where, limit=2, after=first.next, scan=4)
    assert [t.id for t in second.tasks] == ["s6", "s9"]
    assert second.next is None and not second.scan_stopped


def test_cursors_round_trip_and_reject_garbage() -> None:
    cursor = (NOW, "id,with,commas")
    assert queries.parse_cursor(queries.format_cursor(cursor)) == cursor
    for bad in ("", "nonsense", f"{NOW.isoformat()},", "2026-01-01T00:00:00,naive"):
        with pytest.raises(ValueError, match=r"isoformat|bad cursor"):
            queries.parse_cursor(bad)


def test_a_large_list_is_counted_by_the_planners_estimate_a_small_one_exactly() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import bulkload
    from tasktrail.models import Task

    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's; run with TT_DB=postgres")
    with connection.cursor() as cursor:
        bulkload.load(cursor, bulkload.Spec(tasks=20_000, history_every=0))  # then ANALYZE
    with CaptureQueriesContext(connection) as ran:
        estimate = queries.count(Task.objects.all())
    assert 15_000 < estimate < 25_000
    assert not any("COUNT(" in q["sql"].upper() for q in ran.captured_queries)
    failed = Task.objects.filter(state="FAILURE")
    assert queries.count(failed) == failed.count() > 0  # few: counted exactly
