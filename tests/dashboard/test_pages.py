"""The pages on real rows: escaping, filters, keyset pages, live rows, the overview."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tasktrail import store

from .conftest import SCRIPT, client_for, recorded

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def staff(users: dict[str, User]) -> object:
    return client_for(users["staff"])


def test_markup_from_tasks_is_escaped_everywhere(staff: object, failed: str) -> None:
    recorded("t-evil-name", "STARTED", name=SCRIPT, queue=SCRIPT, worker=SCRIPT)
    for path in (
        "/tasktrail/",
        "/tasktrail/tasks/",
        f"/tasktrail/tasks/{failed}/detail/",
        "/tasktrail/tasks/t-evil-name/detail/",
        f"/tasktrail/tasks/?name={SCRIPT}",
    ):
        html = staff.get(path).content.decode()  # type: ignore[attr-defined]
        assert "<script>alert" not in html, path
        assert ESCAPED in html, path


def test_detail_shows_arguments_error_traceback_timeline_and_json(
    staff: object, failed: str
) -> None:
    recorded(failed, "FAILURE")  # a repeat: no new history
    html = staff.get(f"/tasktrail/tasks/{failed}/detail/").content.decode()  # type: ignore[attr-defined]
    assert '<pre class="tt-json" data-json="args">[\n  1,\n  2\n]</pre>' in html
    assert f'"note": "{ESCAPED}"' in html.replace("&quot;", '"')
    assert f"Traceback (most recent call last):\nValueError: {ESCAPED}" in html
    assert html.count('<li data-state="FAILURE">') == 1
    assert (
        "tasktrail:status" not in html
        and f'data-status-url="/tasktrail/tasks/{failed}/status/"' in html
    )


def test_detail_timeline_has_durations_and_attempts(staff: object) -> None:
    began = NOW - timedelta(seconds=30)
    recorded("t-run", "PENDING", began, name="app.run", sent_at=began)
    recorded("t-run", "STARTED", began + timedelta(seconds=2), worker="w1@h", started_at=began)
    recorded("t-run", "SUCCESS", began + timedelta(seconds=12), result="42")
    html = staff.get("/tasktrail/tasks/t-run/detail/").content.decode()  # type: ignore[attr-defined]
    durations = re.findall(r'class="tt-duration">for ([^<]+)<', html)
    assert durations == ["2.000 s", "10.0 s"]
    assert '<pre class="tt-json" data-json="result">42</pre>' in html
    assert "w1@h" in html


def _many(count: int) -> list[str]:
    """``count`` tasks a second apart, newest first; every third failed on queue q1."""
    ids = []
    for i in range(count):
        state = "FAILURE" if i % 3 == 0 else "SUCCESS"
        queue = "q1" if i % 3 == 0 else "q2"
        store.record(
            store.event(
                f"t-{i:03d}",
                state,
                1,
                NOW - timedelta(seconds=i),
                name=f"app.n{i % 2}",
                queue=queue,
            )
        )
        ids.append(f"t-{i:03d}")
    store.sync()
    return ids


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-task-id="([^"]+)"', html)


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return found[1].replace("&amp;", "&") if found else None


def test_the_list_pages_by_keyset_newest_first_without_gaps_or_repeats(staff: object) -> None:
    ids = _many(55)
    first = staff.get("/tasktrail/tasks/").content.decode()  # type: ignore[attr-defined]
    assert _ids(first) == ids[:50]
    following = _next(first)
    assert following is not None and "after=" in following
    second = staff.get(following).content.decode()  # type: ignore[attr-defined]
    assert _ids(second) == ids[50:]
    assert _next(second) is None
    assert "data-first" in second


def test_filters_combine(staff: object, users: dict[str, User]) -> None:
    ids = _many(12)
    recorded(
        "t-owned", "SUCCESS", NOW - timedelta(days=3), name="app.n0", owner_id=users["plain"].pk
    )

    def listed(query: str) -> list[str]:
        return _ids(staff.get(f"/tasktrail/tasks/?{query}").content.decode())  # type: ignore[attr-defined]

    assert listed("state=failure") == ids[::3]
    assert listed("state=FAILURE&name=app.n1") == [i for n, i in enumerate(ids) if n % 6 == 3]
    assert listed("queue=q2") == [i for n, i in enumerate(ids) if n % 3]
    assert listed("owner=plain") == ["t-owned"]
    since = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert "t-owned" not in listed(f"since={since}") and len(listed(f"since={since}")) == 12
    assert listed(f"until={since}") == ["t-owned"]
    detail = staff.get("/tasktrail/tasks/t-owned/detail/").content.decode()  # type: ignore[attr-defined]
    assert f"plain (id {users['plain'].pk})" in detail


def test_bad_filters_are_reported_not_used(staff: object) -> None:
    _many(3)
    html = staff.get(
        "/tasktrail/tasks/?state=lower%20case!&owner=nobody&after=garbage"
    ).content.decode()  # type: ignore[attr-defined]
    assert "invalid task state" in html
    assert "unknown user" in html
    assert "bad page cursor" in html
    assert _ids(html) == []


def test_search_by_id_opens_the_task_or_says_it_is_unknown(staff: object) -> None:
    _many(2)
    found = staff.get("/tasktrail/tasks/?id=t-001")  # type: ignore[attr-defined]
    assert found.status_code == 302 and found["Location"] == "/tasktrail/tasks/t-001/detail/"
    missing = staff.get("/tasktrail/tasks/?id=t-999").content.decode()  # type: ignore[attr-defined]
    assert "No task has the id <code>t-999</code>" in missing


def test_live_rows_answer_for_the_ids_asked_only(staff: object) -> None:
    recorded(
        "t-live",
        "PROGRESS",
        name="app.p",
        progress_current=3.0,
        progress_total=4.0,
        progress_message="row 3",
    )
    data = staff.get("/tasktrail/live/?id=t-live&id=unknown").json()  # type: ignore[attr-defined]
    assert list(data["tasks"]) == ["t-live"]
    row = data["tasks"]["t-live"]
    assert (row["state"], row["phase"], row["percent"], row["progress"]) == (
        "PROGRESS",
        "running",
        75.0,
        "3/4 (75%) row 3",
    )
    assert "args" not in row and "result" not in row


def test_the_overview_shows_counts_chart_timings_running_stuck_lost_and_workers(
    staff: object,
) -> None:
    from tests.conftest import heartbeat_row

    sent = NOW - timedelta(minutes=5)
    recorded("o-ok", "PENDING", sent, name="app.ok", sent_at=sent)
    recorded("o-ok", "STARTED", sent + timedelta(seconds=1), started_at=sent + timedelta(seconds=1))
    recorded(
        "o-ok", "SUCCESS", sent + timedelta(seconds=4), finished_at=sent + timedelta(seconds=4)
    )
    recorded("o-bad", "FAILURE", NOW - timedelta(minutes=2), name="app.bad")
    recorded(
        "o-run", "STARTED", NOW - timedelta(seconds=5), name="app.run", worker="w@h", started_at=NOW
    )
    recorded("o-stuck", "PENDING", NOW - timedelta(hours=2), name="app.stuck")
    recorded("o-lost", "LOST", NOW - timedelta(minutes=1), name="app.lost")
    now = timezone.now()
    heartbeat_row("w@h", 10, now, now, now + timedelta(seconds=30), active=1, reserved=0)
    html = staff.get("/tasktrail/?window=hour").content.decode()  # type: ignore[attr-defined]
    hour = html.split('data-window="hour"')[1].split("</div>")[0]
    assert "<span data-total>4</span> tasks" in hour  # the stuck one changed 2 h ago
    assert '<span data-count="FAILURE">1</span>' in hour
    assert "<svg" in html and 'class="tt-bar-failed"' in html and "<polyline" in html
    assert "app.ok" in html.split('id="tt-timings"')[1].split("</table>")[0]
    for section, task in (("tt-running", "o-run"), ("tt-stuck", "o-stuck"), ("tt-lost", "o-lost")):
        assert f'data-task-id="{task}"' in html.split(f'id="{section}"')[1].split("</table>")[0]
    assert 'data-worker="w@h"' in html and 'data-status="alive"' in html


def test_detail_links_the_children_celery_stored(staff: object) -> None:
    # Celery's form of a finished task's children: [[id, parent], None] per child.
    recorded("t-parent", "SUCCESS", children='[[["t-kid", "t-parent"], null]]')
    html = staff.get("/tasktrail/tasks/t-parent/detail/").content.decode()  # type: ignore[attr-defined]
    assert 'href="/tasktrail/tasks/t-kid/detail/"' in html
