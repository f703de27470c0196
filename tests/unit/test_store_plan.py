"""The PostgreSQL flush statement's plan: its history check must stay a lookup per entry.

A plan is behaviour here, not timing: a hash anti-join reads the whole history table on
every flush, so the write path slows as history grows (bench/README.md saw PostgreSQL's
CPU per task go from 0.58 to 2.0 ms in a 5,000-task run).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from tasktrail import store
from tasktrail.store import write
from tasktrail.store.history import COLUMNS as HISTORY_COLUMNS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _plan(rows: int, stored: int, analyzed: bool) -> str:
    now = timezone.now().isoformat()
    tasks = [{"task_id": f"plan-{i}", "state": "SUCCESS", "attempt": 1} for i in range(rows)]
    entries = [
        dict(
            zip(
                HISTORY_COLUMNS,
                (f"plan-{i}", "SUCCESS", 1, now, "w@h", None),
                strict=True,
            )
        )
        for i in range(rows)
    ]
    # Task rows too: the statement looks up the rows' derived history (rule 5).
    for i in range(stored // 3):
        store.record(store.event(f"old-{i}", "SUCCESS", 1, timezone.now(), name="app.t"))
    store.flush()
    statement = write._postgresql_statement(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasktrail_transition (task_id, state, attempt, at, worker, action) "
            "SELECT 'old-' || (n / 3), (ARRAY['PENDING','STARTED','SUCCESS'])[mod(n, 3) + 1], 1, "
            "now(), 'w@h', '' FROM generate_series(1, %s) AS n",
            [stored],
        )
        if analyzed:
            cursor.execute("ANALYZE tasktrail_transition")
            cursor.execute("ANALYZE tasktrail_task")
        cursor.execute(f"EXPLAIN {statement}", [json.dumps(tasks), json.dumps(entries)])
        return "\n".join(line for (line,) in cursor.fetchall())


# Without OFFSET 0 the planner read them all in each of these (it chose lookups only
# from about 100,000 analysed entries); 15,600 never analysed is a 5,000-task bench
# run's table.
@pytest.mark.parametrize("stored", [2_000, 15_600])
@pytest.mark.parametrize("analyzed", [False, True])
def test_the_history_check_looks_entries_up_by_task_instead_of_reading_the_history(
    stored: int, analyzed: bool
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement flush is PostgreSQL's (TT_DB=postgres)")
    plan = _plan(200, stored, analyzed)
    assert "Seq Scan on tasktrail_transition" not in plan, plan
    assert "Seq Scan on tasktrail_task " not in plan, plan
    assert "tasktrail_transition_task" in plan, plan
