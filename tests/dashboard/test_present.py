"""What the dashboard draws from its queries' results: pure code, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasktrail.store.overview import Bucket, Throughput
from tasktrail.web import present

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _throughput(*counts: tuple[int, int]) -> Throughput:
    buckets = [Bucket(T0 + i * MINUTE, done, failed) for i, (done, failed) in enumerate(counts)]
    return Throughput("hour", MINUTE, buckets, None)


def test_the_failure_rate_line_breaks_where_no_task_finished() -> None:
    chart = present.chart(_throughput((4, 1), (2, 2), (0, 0), (0, 0), (5, 0), (0, 0)))
    first, lone = chart.rate_lines
    assert len(first.split()) == 2  # the first two buckets, joined
    # A lone bucket still shows, as a short level line at 0 % (the bottom).
    (_, y1), (_, y2) = (point.split(",") for point in lone.split())
    assert float(y1) == float(y2) == chart.height
    assert (chart.peak, chart.total, chart.failed) == (5, 11, 3)


def test_no_finished_task_draws_no_line() -> None:
    assert present.chart(_throughput((0, 0), (0, 0))).rate_lines == []
