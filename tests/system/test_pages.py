"""The workers and queues pages and the metrics endpoint on a real database and broker."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasktrail import conf, queues
from tasktrail.store import workers as stored_workers
from tests.conftest import client_for, heartbeat_row, make_user, recorded
from tests.faults import FaultProxy

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "s3cret-token-for-prometheus"
QUEUE = f"tt-system-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def users() -> dict[str, User]:
    return {
        "plain": make_user("plain"),
        "viewer": make_user("viewer", "view_task"),
        "staff": make_user("staff", is_staff=True),
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the Celery app's broker somewhere else for one test."""

    def point(url: str) -> None:
        # broker_url only: broker_read_url falls back to it (and patching it would
        # "restore" the fallback it read, the patched URL, for every later test).
        monkeypatch.setattr(current_app.conf, "broker_url", url)

    return point


def test_workers_page_shows_pool_load_and_the_last_hour(users: dict[str, User]) -> None:
    now = timezone.now()
    heartbeat_row("busy@h", 10, now - timedelta(hours=2), now, now + timedelta(minutes=1), 4, 6)
    stored_workers.beat("busy@h", 10, now - timedelta(hours=2), timedelta(minutes=1), 4, 6, 4)
    heartbeat_row(
        "gone@h",
        11,
        now - timedelta(hours=3),
        now - timedelta(hours=1),
        now - timedelta(minutes=50),
    )
    for _ in range(3):
        recorded(unique("ok"), "SUCCESS", name="app.add", worker="busy@h")
    recorded(unique("bad"), "FAILURE", name="app.add", worker="busy@h", error_type="ValueError")
    response = client_for(users["staff"]).get("/tasktrail/workers/")
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index('data-worker="busy@h"') :]
    row = row[: row.index("</tr>")]
    assert '<td data-label="Pool" data-pool>4</td>' in row
    assert "data-active>4<" in row and "data-reserved>6<" in row
    assert "data-finished>4<" in row and "data-failed>1<" in row and "25 %" in row
    assert 'data-status="alive"' in row
    assert 'data-worker="gone@h"' in html and 'data-status="silent"' in html
    # The nav links each page.
    assert 'href="/tasktrail/workers/"' in html and 'href="/tasktrail/queues/"' in html


def test_pages_are_not_found_for_those_who_see_no_workers(users: dict[str, User]) -> None:
    for path in ("/tasktrail/workers/", "/tasktrail/queues/"):
        assert client_for(None).get(path).status_code == 404
        assert client_for(users["plain"]).get(path).status_code == 404


def test_queues_page_reads_the_broker_and_the_store(users: dict[str, User], broker_at) -> None:  # type: ignore[no-untyped-def]
    sent = timezone.now() - timedelta(minutes=5)
    waiting = unique("wait")
    recorded(waiting, "PENDING", name="app.add", queue=QUEUE, sent_at=sent)
    started = timezone.now() - timedelta(seconds=2)
    recorded(
        unique("done"),
        "SUCCESS",
        name="app.add",
        queue=QUEUE,
        sent_at=started - timedelta(seconds=1.5),
        started_at=started,
        finished_at=timezone.now(),
    )
    with current_app.connection_for_write() as conn:
        producer = conn.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key=QUEUE, declare=[_queue(conn)])
    try:
        response = client_for(users["staff"]).get("/tasktrail/queues/")
        html = response.content.decode()
        assert response.status_code == 200
        row = html[html.index(f'data-queue="{QUEUE}"') :]
        row = row[: row.index("</tr>")]
        assert "data-depth>3<" in row
        assert "data-waiting>1<" in row
        assert f'datetime="{sent.isoformat()}"' in row
        assert "1.500" in row  # the wait p50, from the store
        transport = queues.read(current_app, [QUEUE]).transport
        if transport == "redis":
            assert "n/a (Redis)" in row
        else:
            assert "data-consumers>0<" in row
    finally:
        with current_app.connection_for_write() as conn:
            bound = _queue(conn)
            bound.purge()
            bound.delete()


def _queue(conn):  # type: ignore[no-untyped-def]
    from kombu import Queue

    return Queue(QUEUE, routing_key=QUEUE).bind(conn.default_channel)


def test_a_broker_that_is_down_is_reported_not_a_500(users: dict[str, User], broker_at) -> None:  # type: ignore[no-untyped-def]
    recorded(unique("wait"), "PENDING", name="app.add", queue=QUEUE)
    url = current_app.conf.broker_url
    broker_at(
        url.replace(
            url.split("//", 1)[1].split("/", 1)[0].split("@")[-1], f"127.0.0.1:{_closed_port()}"
        )
    )
    response = client_for(users["staff"]).get("/tasktrail/queues/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "data-broker-error" in html and "refused" in html.lower()
    assert f'data-queue="{QUEUE}"' in html  # the store's half is still there


@override_settings(TASKTRAIL={"BROKER_TIMEOUT": 1})
def test_a_broker_that_hangs_is_given_up_on_in_bounded_time(
    users: dict[str, User], broker_at
) -> None:  # type: ignore[no-untyped-def]
    url = current_app.conf.broker_url
    host = url.split("//", 1)[1].split("/", 1)[0].split("@")[-1]
    name, port = host.rsplit(":", 1)
    proxy = FaultProxy(name, int(port))
    try:
        proxy.freeze()
        broker_at(url.replace(host, f"127.0.0.1:{proxy.port}"))
        started = time.monotonic()
        response = client_for(users["staff"]).get("/tasktrail/queues/")
        took = time.monotonic() - started
        assert response.status_code == 200
        assert "data-broker-error" in response.content.decode()
        # Bounded by BROKER_TIMEOUT; a generous margin for a loaded machine, not a timing.
        assert took < 15, took
    finally:
        proxy.close()


def _scrape(client, **headers: str):  # type: ignore[no-untyped-def]
    return client.get("/tasktrail/metrics", headers=headers)


def test_metrics_are_never_open_by_default(users: dict[str, User]) -> None:
    anonymous = _scrape(client_for(None))
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert _scrape(client_for(users["plain"])).status_code == 403
    # VIEW_PERMISSION lets a user see tasks, not metrics.
    assert _scrape(client_for(users["viewer"])).status_code == 403
    # No token configured: none is accepted.
    assert _scrape(client_for(None), Authorization=f"Bearer {TOKEN}").status_code == 401
    assert _scrape(client_for(users["staff"])).status_code == 200


def test_metrics_by_permission(users: dict[str, User]) -> None:
    with override_settings(TASKTRAIL={"METRICS_PERMISSION": "tasktrail.view_task"}):
        assert _scrape(client_for(users["viewer"])).status_code == 200
        assert _scrape(client_for(users["plain"])).status_code == 403


def test_metrics_by_bearer_token(users: dict[str, User]) -> None:
    with override_settings(TASKTRAIL={"METRICS_TOKEN": TOKEN}):
        assert _scrape(client_for(None), Authorization=f"Bearer {TOKEN}").status_code == 200
        assert _scrape(client_for(None), Authorization=f"bearer {TOKEN}").status_code == 200
        wrong = _scrape(client_for(None), Authorization=f"Bearer {TOKEN}x")
        assert wrong.status_code == 401
        # A wrong token is refused even from a staff session: the token alone judges.
        assert _scrape(client_for(users["staff"]), Authorization="Bearer nope").status_code == 401
        assert _scrape(client_for(None), Authorization=f"Basic {TOKEN}").status_code == 401


def test_a_short_token_is_refused_at_startup() -> None:
    with pytest.raises(ImproperlyConfigured, match="at least 16 characters"):
        conf.load({"METRICS_TOKEN": "short"})
    with pytest.raises(ImproperlyConfigured, match="METRICS_PERMISSION"):
        conf.load({"METRICS_PERMISSION": 3})


def test_the_scrape_parses_and_names_what_the_store_holds(users: dict[str, User]) -> None:
    now = timezone.now()
    heartbeat_row("w1@h", 10, now - timedelta(hours=1), now, now + timedelta(minutes=1), 2, 0)
    started = now - timedelta(seconds=3)
    recorded(
        unique("ok"),
        "SUCCESS",
        name="app.add",
        queue=QUEUE,
        sent_at=started - timedelta(seconds=0.02),
        started_at=started,
        finished_at=now,
    )
    recorded(unique("run"), "STARTED", name="app.add", worker="w1@h", queue=QUEUE)
    recorded(unique("wait"), "PENDING", name="app.add", queue=QUEUE)
    response = _scrape(client_for(users["staff"]))
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("tasktrail_tasks_total", (("name", "app.add"), ("state", "SUCCESS")))] == 1
    assert families["tasktrail_task_runtime_seconds"].type == "histogram"
    assert (
        samples[("tasktrail_task_runtime_seconds_bucket", (("le", "2.5"), ("name", "app.add")))]
        == 0
    )
    assert (
        samples[("tasktrail_task_runtime_seconds_bucket", (("le", "5.0"), ("name", "app.add")))]
        == 1
    )
    assert samples[("tasktrail_task_wait_seconds_count", (("name", "app.add"),))] == 1
    assert samples[("tasktrail_tasks_running", ())] == 1
    assert samples[("tasktrail_workers_alive", ())] == 1
    assert samples[("tasktrail_worker_up", (("hostname", "w1@h"),))] == 1
    assert samples[("tasktrail_broker_up", ())] == 1
    assert samples[("tasktrail_tasks_waiting", ())] == 1
    # The queue of a waiting task is read from the broker (empty: 0 on Redis, not
    # declared on RabbitMQ, where no consumer declared it).
    if queues.read(current_app, [QUEUE]).transport == "redis":
        assert samples[("tasktrail_queue_messages", (("queue", QUEUE),))] == 0
