"""Queue wait: one rule for the dashboard's timings and the metrics' histogram.

A task's queue wait is its last attempt's: from when that attempt **became due** to
when it started, never below zero (a producer's clock a little ahead of the worker's).

- A first attempt became due when it was sent (``sent_at``).
- A later attempt became due when its retry's countdown ended: the ``due`` its worker
  noted on STARTED (the message's ``eta``); a retry without a countdown, when the retry
  was recorded.
- Where neither is known, the attempt has no wait, rather than one counted from the
  first sending: a retry's countdown is the task's own choice, not the queue's delay
  (counted from the first sending, ``send_email`` retried with a 3 s countdown read
  "wait p50 3.4 s" over a queue that took milliseconds).

Who knows what: the dashboard's :func:`~.overview.timings` reads a retried task's
STARTED and RETRY history (a few percent of its sample). A flush of the write path
(:mod:`.rollup`) knows the task row only, whose ``next_retry_at`` is reset when the next
attempt starts, so for the metric a retried task's wait is unknown: the histogram
observes first attempts, the timings every finished task. Both apply :func:`became_due`
and :func:`seconds`, in Python, and :func:`seconds_sql` where PostgreSQL's flush
computes it; tests/unit/test_waits.py checks the SQL against the Python.
"""

from __future__ import annotations

from datetime import datetime


def became_due(
    attempt: int,
    sent_at: datetime | None,
    noted: datetime | None = None,
    retried_at: datetime | None = None,
) -> datetime | None:
    """When the attempt ``attempt`` became due, or ``None`` if that is not known.

    ``noted``: the ``due`` its worker noted on STARTED (a later attempt's); ``retried_at``:
    when the attempt before it asked for the retry. An attempt of 0 is an unknown one,
    taken as the first (as the write path stores it).
    """
    if attempt <= 1:
        return sent_at
    return noted if noted is not None else retried_at


def seconds(due: datetime | None, started_at: datetime | None) -> float | None:
    """The wait from ``due`` to ``started_at`` in seconds; ``None`` if either is unknown."""
    if due is None or started_at is None:
        return None
    return max(0.0, (started_at - due).total_seconds())


def first_due_sql(attempt: str, sent_at: str) -> str:
    """:func:`became_due` over a task row's columns, as SQL: a first attempt's sending,
    NULL for a later attempt (its due is in the history, which the row does not hold)."""
    return f"(CASE WHEN {attempt} <= 1 THEN {sent_at} END)"


def seconds_sql(due: str, started_at: str) -> str:
    """:func:`seconds` in PostgreSQL: NULL when either is (GREATEST alone would make a
    NULL difference 0)."""
    return (
        f"(CASE WHEN {due} IS NOT NULL AND {started_at} IS NOT NULL THEN "
        f"GREATEST(0, EXTRACT(EPOCH FROM {started_at} - {due}))::float8 END)"
    )
