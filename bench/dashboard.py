"""Dashboard benchmark: the overview, the task list and the admin with 10 M tasks on PostgreSQL.

``python -m bench.dashboard [--tasks 10000000] [--runs 20]`` keeps a database of its own
(``--db``, default ``tt_bench10m``), loads it with ``bench.bulkload`` unless it already
holds the same data set (``--reload`` forces a fresh one), applies any new migrations,
then renders each page through Django's test client as a logged-in staff user: W
warm-up requests, then N timed ones, reporting p50/p95/max in ms and the ratio to the
200 ms target (docs/explanation/targets.md). For every page it also lists the SQL
the page ran, with each query's time, and prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the
slowest query of each page over ``--explain-over`` ms.

``--write N`` also times tasktrail's write path (N tasks through PENDING, STARTED and
SUCCESS, 200 rows per flush, against the 10 M-row table), to weigh what an extra index
costs writers; ``--index "CREATE INDEX ..."`` creates an index (concurrently, if it is
not there) before measuring and ``--drop-index NAME`` drops one, so a candidate index
can be measured with and without it. Every run prints the task table's indexes and
their sizes. As ``python -m bench`` does, each page waits for an idle machine and is measured again
when other processes took more than 10 % of the CPU. Nothing is asserted: the numbers
are for people (bench/README.md keeps a run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from bench import bulkload, database, procstat
from tasktrail import states
from tasktrail.store.sql import HISTORY_TABLE, TASK_TABLE

TARGET_MS = 200.0
#: A page whose warm-up requests took longer than this (s) is timed SLOW_RUNS times.
SLOW_S = 1.0
SLOW_RUNS = 3
_ROOT = Path(__file__).resolve().parent.parent
#: Task names to filter the list by: a busy one (0.6 %) and the rarest (0.005 %).
NAME_FILTERS = ("app.reports.build_weekly", "app.maintenance.rebuild_search_index")
STAFF = "bench-staff"


def _setup_django(db: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-only",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "tasktrail",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "tasktrail.middleware.OwnerMiddleware",
        ],
        ROOT_URLCONF="bench.dashboard_urls",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        DATABASES={"default": database.django_postgres(db, CONN_MAX_AGE=None)},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


# --- the data set ------------------------------------------------------------------------


def _stored_spec(db: str) -> dict[str, Any] | None:
    """The data set recorded in ``db``, or ``None`` (no database, or no complete load)."""
    import psycopg

    try:
        with psycopg.connect(**database.connect_kwargs(db), autocommit=True) as conn:
            return bulkload.loaded(conn.cursor())
    except psycopg.OperationalError:
        return None


def _ensure_database(db: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**database.connect_kwargs("postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def prepare(db: str, spec: bulkload.Spec, reload: bool) -> dict[str, Any]:
    """Make ``db`` hold ``spec``'s data set (reusing a stored one); set Django up on it."""
    stored = None if reload else _stored_spec(db)
    fresh = stored is None or stored.get("spec") != spec.signature()
    if fresh:
        from bench.database import recreate_postgres

        print(f"loading {spec.tasks:,} tasks into {db} (a new database)", flush=True)
        recreate_postgres(db)
    else:
        _ensure_database(db)
    _setup_django(db)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        if fresh:
            times = bulkload.load(cursor, spec, progress=lambda line: print(line, flush=True))
            bulkload.record(cursor, spec, times)
            print(
                "loaded in {total:.0f} s: rows {rows:.0f} s, indexes {indexes:.0f} s, "
                "VACUUM ANALYZE {vacuum_analyze:.0f} s".format(**times),
                flush=True,
            )
        stored = bulkload.loaded(cursor)
    assert stored is not None
    return stored


# --- pages ---------------------------------------------------------------------------------


@dataclass
class Page:
    label: str
    url: str
    #: Found by following links (the keyset page): not known before the run.
    note: str = ""


@dataclass
class Result:
    label: str
    url: str
    status: int
    times_ms: list[float]
    queries: list[tuple[float, str]] = field(default_factory=list)
    note: str = ""
    #: Share of the machine's CPU others took while this page was timed.
    others: float = 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "url": self.url,
            "status": self.status,
            "p50_ms": round(statistics.median(self.times_ms), 1),
            "p95_ms": round(self.quantile(0.95), 1),
            "max_ms": round(max(self.times_ms), 1),
            "queries": len(self.queries),
            "sql_ms": round(sum(t for t, _ in self.queries), 1),
            "note": self.note,
            "others_cpu": round(self.others, 3),
        }


class _Links(HTMLParser):
    """The page's links: (href, rel)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            found = dict(attrs)
            self.links.append((found.get("href") or "", found.get("rel") or ""))


def _links(html: str) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def next_link(html: str, base: str) -> str | None:
    """The list page's link to the next (older) page: ``rel="next"``."""
    for href, rel in _links(html):
        if "next" in rel.split() and href:
            return urljoin(base, href)
    return None


def _sample_task(state: str = "SUCCESS") -> str:
    """A recent task's id in ``state`` (a day old: what someone would click)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT task_id FROM {TASK_TABLE} WHERE state = %s AND owner_id IS NULL "
            "AND updated_at < now() - interval '1 day' ORDER BY updated_at DESC LIMIT 1",
            [state],
        )
        row = cursor.fetchone()
    return str(row[0])


def pages(client: Any, depth: int) -> list[Page]:
    """The pages to time; the dashboard's when its URLs exist, the admin's always."""
    from django.urls import reverse

    overview = reverse("tasktrail:dashboard")
    task_list = reverse("tasktrail:task_list")
    task_id = _sample_task()
    found = [
        Page("overview", overview),
        Page("overview window=hour", f"{overview}?window=hour"),
        Page("overview window=week", f"{overview}?window=week"),
        Page("list", task_list),
    ]
    found.append(Page("list state=FAILURE", f"{task_list}?state=FAILURE"))
    found.append(Page("list state=PENDING", f"{task_list}?state=PENDING"))
    for name in NAME_FILTERS:
        found.append(Page(f"list name={name.rsplit('.', 1)[-1]}", f"{task_list}?name={name}"))
    found.append(Page("list queue=billing", f"{task_list}?queue=billing"))
    found.append(Page("list owner=user0042", f"{task_list}?owner=user0042"))
    found.append(Page("list id=<task id>", f"{task_list}?id={task_id}"))
    deep = _follow(client, task_list, depth)
    if deep is not None:
        found.append(deep)
    deep = _follow(client, f"{task_list}?state=FAILURE", 2)
    if deep is not None:
        found.append(Page("list state=FAILURE page 2", deep.url))
    rare = f"{task_list}?name={NAME_FILTERS[-1]}"
    deep = _follow(client, rare, 10)
    if deep is not None:
        found.append(Page("list name=rebuild_... page 10", deep.url))
    found += _search_pages(overview, task_list, reverse("tasktrail:list_events"))
    found.append(Page("task detail", reverse("tasktrail:task_detail", args=[task_id])))
    # The system view: heartbeat rows, capped scans, and the broker (the default Celery
    # app's: RabbitMQ on localhost, as no broker is configured here).
    found.append(Page("workers", reverse("tasktrail:workers")))
    found.append(Page("queues", reverse("tasktrail:queues")))
    found.append(Page("metrics scrape", reverse("tasktrail:metrics")))
    found.append(Page("admin changelist", "/admin/tasktrail/task/"))
    found.append(Page("admin state=FAILURE", "/admin/tasktrail/task/?state=FAILURE"))
    found.append(Page("admin search id", f"/admin/tasktrail/task/?q={task_id}"))
    found.append(Page("admin search name", f"/admin/tasktrail/task/?q={NAME_FILTERS[0]}"))
    found.append(Page("admin task", f"/admin/tasktrail/task/{task_id}/change/"))
    found += [
        Page("admin search name part", "/admin/tasktrail/task/?q=build_"),
        Page("admin search worker", "/admin/tasktrail/task/?q=worker-3"),
        Page("admin name filter", "/admin/tasktrail/task/?name=app.reports.build_weekly"),
        Page("admin name filter, rare", f"/admin/tasktrail/task/?name={NAME_FILTERS[-1]}"),
        Page("admin queue filter", "/admin/tasktrail/task/?queue=billing"),
    ]
    return found


def _search_pages(overview: str, task_list: str, stream: str) -> list[Page]:
    """The operators' search (name by part, state, worker, error text, arguments, time
    window), the overview searched, and one batch of each live stream."""
    from django.utils import timezone

    recent = f"{(timezone.now() - timedelta(minutes=1)).isoformat()},"
    searches = {
        "name=build_ (2 names)": "name=build_",
        "name=reports. (2 names)": "name=reports.",
        "name=rebuild_search (rare)": "name=rebuild_search",
        "yesterday's failures of sync_crm": "name=sync_crm&state=FAILURE&since=2d&until=1d",
        "worker=worker-3": "worker=worker-3",
        "error=502": "error=502",
        "arguments=42": "arguments=42",
        "since=90m": "since=90m",
    }
    found = [Page(f"list {label}", f"{task_list}?{query}") for label, query in searches.items()]
    found.append(Page("overview name=reports.", f"{overview}?name=reports."))
    found.append(Page("live batch, list", f"{stream}?once=1&list=tasks&from={quote(recent)}"))
    found.append(
        Page(
            "live batch, running + counts",
            f"{stream}?once=1&list=running&counts=1&from={quote(recent)}",
        )
    )
    return found


def _follow(client: Any, url: str, depth: int) -> Page | None:
    """The list page ``depth`` pages deep, reached by following the next links."""
    for n in range(1, depth):
        response = client.get(url)
        following = next_link(response.content.decode(), url)
        if response.status_code != 200 or following is None:
            print(f"  no next link on list page {n} ({url}); skipping the deep page")
            return None
        url = following
    return Page(f"list page {depth} (keyset)", url)


class _QueryTimer:
    """Every query a request runs, timed to the microsecond, as SQL that can be re-run."""

    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            ms = (time.perf_counter() - started) * 1000
            ops = context["connection"].ops
            self.queries.append((ms, ops.last_executed_query(context["cursor"], sql, params)))


def measure(client: Any, page: Page, runs: int, warmup: int) -> Result:
    from django.db import connection

    started = time.perf_counter()
    for _ in range(warmup):
        client.get(page.url)
    if warmup and (time.perf_counter() - started) / warmup > SLOW_S:
        # A page taking seconds says all it has to say in a few requests.
        runs = min(runs, SLOW_RUNS)
    times = []
    status = 0
    before, (_, total0) = procstat.snapshot(None), procstat._system_times()
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(page.url)
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    after, (_, total1) = procstat.snapshot(None), procstat._system_times()
    # As ``python -m bench`` counts it: the machine's busy time less this process's and
    # PostgreSQL's (backends serving other databases count as others).
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    others = spent.get("machine", 0.0) - spent.get("producer", 0.0) - spent.get("postgres", 0.0)
    share = max(0.0, others / (total1 - total0)) if total1 > total0 else 0.0
    # One more, untimed, for the SQL (timing each query costs a little).
    timer = _QueryTimer()
    with connection.execute_wrapper(timer):
        client.get(page.url)
    return Result(page.label, page.url, status, times, timer.queries, page.note, share)


def explain(sql: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return [row[0] for row in cursor.fetchall()]


def completeness() -> list[tuple[str, int, bool, float]]:
    """How full the first page of each filtered list is: (filter, tasks, scan stopped, ms).

    A filter no index serves is checked along the ``updated_at`` index for a bounded
    number of rows; a rare value leaves the first page short.
    """
    from tasktrail.store import queries

    filters = {
        "state=FAILURE": {"state": "FAILURE"},
        "state=PENDING": {"state": "PENDING"},
        "queue=billing": {"queue": "billing"},
        "owner=42": {"owner_id": 42},
        **{f"name={n.rsplit('.', 1)[-1]}": {"name": n} for n in NAME_FILTERS},
        "name=build_ (part)": {"name": "build_"},
        "name=rebuild_search (part)": {"name": "rebuild_search"},
        "worker=worker-3": {"worker": "worker-3"},
        "error=502": {"error": "502"},
    }
    out = []
    for label, where in filters.items():
        started = time.perf_counter()
        found = queries.page(queries.TaskFilter(**where), 50)
        ms = (time.perf_counter() - started) * 1000
        out.append((label, len(found.tasks), found.scan_stopped, ms))
    return out


class _Rollback(Exception):
    pass


def stuck_when_healthy() -> tuple[float, float]:
    """``overview.stuck()`` in ms as loaded (about 2,000 tasks stuck for days) and with
    none stuck (those settled, in a transaction rolled back afterwards): the healthy
    case is when a scan finds nothing to stop at."""
    from django.db import connection, transaction
    from django.utils import timezone

    from tasktrail import conf
    from tasktrail.store import overview

    def timed() -> float:
        started = time.perf_counter()
        overview.stuck(timezone.now())
        return (time.perf_counter() - started) * 1000

    as_loaded = timed()
    healthy = 0.0
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {TASK_TABLE} SET state = 'SUCCESS', rank = {states.RANK_DONE} "
                    f"WHERE rank < {states.RANK_LOST} AND updated_at < %s",
                    [timezone.now() - conf.get().STUCK_AFTER],
                )
            healthy = timed()
            raise _Rollback
    except _Rollback:
        pass
    return as_loaded, healthy


# --- indexes and the write path ---------------------------------------------------------------


def indexes() -> list[tuple[str, str, int]]:
    """The task table's indexes: (name, definition, bytes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef, pg_relation_size(indexname::regclass) FROM pg_indexes "
            f"WHERE tablename = '{TASK_TABLE}' ORDER BY indexname"
        )
        return [(n, d, int(s)) for n, d, s in cursor.fetchall()]


def drift(listed: list[tuple[str, str, int]]) -> tuple[list[str], list[str]]:
    """Indexes the models declare that the table lacks, and the table's that no model or
    field declares (experiments made with ``--index`` or by hand)."""
    from tasktrail.models import Task

    declared = {index.name for index in Task._meta.indexes}
    present = {name for name, _, _ in listed}
    # Primary key, its LIKE twin and the owner foreign key come from fields.
    implicit = re.compile(r"_pkey$|_like$|^tasktrail_task_owner_id_")
    extra = [n for n in sorted(present - declared) if not implicit.search(n)]
    return sorted(declared - present), extra


def table_size() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_table_size(%s)", [TASK_TABLE])
        return int(cursor.fetchone()[0])


def _index_name(statement: str) -> str:
    found = re.search(r"INDEX\s+(?:CONCURRENTLY\s+)?(?:IF NOT EXISTS\s+)?(\w+)", statement, re.I)
    if not found:
        raise SystemExit(f"--index: cannot find the index name in {statement!r}")
    return found.group(1)


def apply_indexes(create: list[str], drop: list[str]) -> None:
    from django.db import connection

    existing = {name for name, _, _ in indexes()}
    with connection.cursor() as cursor:
        for name in drop:
            if name in existing:
                print(f"dropping index {name}", flush=True)
                cursor.execute(f'DROP INDEX CONCURRENTLY "{name}"')
        for statement in create:
            name = _index_name(statement)
            if name in existing:
                continue
            print(f"creating: {statement}", flush=True)
            started = time.monotonic()
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute(statement)
            print(f"  built in {time.monotonic() - started:.1f} s", flush=True)
            cursor.execute(f"ANALYZE {TASK_TABLE}")


def write_path(tasks: int, batch: int = 200) -> dict[str, float]:
    """tasktrail's write path against the big table: ms per flush of ``batch`` rows, by phase.

    Each task goes PENDING (insert), STARTED and SUCCESS (guarded updates, history),
    one flush per phase per batch, as a busy deployment's flushes do. The rows are
    deleted afterwards.
    """
    from django.db import connection
    from django.utils import timezone

    from tasktrail import store

    tag = f"bench-write-{os.getpid()}-{int(time.time())}"
    phases: dict[str, list[float]] = {"PENDING": [], "STARTED": [], "SUCCESS": []}
    for start in range(0, tasks, batch):
        ids = [f"{tag}-{n}" for n in range(start, min(start + batch, tasks))]
        for state, times in phases.items():
            now = timezone.now()
            for task_id in ids:
                if state == "PENDING":
                    values = {"name": "app.bench.write", "queue": "celery", "sent_at": now}
                elif state == "STARTED":
                    values = {"worker": "celery@bench", "worker_pid": 1, "started_at": now}
                else:
                    values = {"result": "1", "finished_at": now}
                store.record(store.event(task_id, state, 1, now, **values))
            started = time.perf_counter()
            store.flush()
            times.append((time.perf_counter() - started) * 1000)
    # By id, through the indexes: a LIKE would scan all 10 M rows (minutes per run).
    written = [f"{tag}-{n}" for n in range(tasks)]
    with connection.cursor() as cursor:
        for table in (HISTORY_TABLE, TASK_TABLE):
            cursor.execute(f"DELETE FROM {table} WHERE task_id = ANY(%s)", [written])
    # The first batches warm the connection and the prepared statement.
    skip = min(3, len(phases["PENDING"]) - 1)
    return {
        f"{state} ms/flush": round(statistics.median(times[skip:]), 2)
        for state, times in phases.items()
    } | {
        "rows/s": round(
            batch * len(phases) / sum(statistics.median(t[skip:]) for t in phases.values()) * 1000
        )
    }


# --- the run ----------------------------------------------------------------------------------


def _age(stored: dict[str, Any]) -> str:
    loaded_at = datetime.fromisoformat(stored["loaded_at"])
    hours = (datetime.now(UTC) - loaded_at).total_seconds() / 3600
    return f"loaded {loaded_at:%Y-%m-%d %H:%M} UTC ({hours:.1f} h ago)"


def _table(results: list[Result]) -> str:
    header = (
        f"{'page':<32} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'p50/200':>8} {'p95/200':>8} {'queries':>7} {'SQL ms':>8} {'others':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        s = r.summary()
        lines.append(
            f"{r.label:<32} {r.status:>6} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
            f"{s['max_ms']:>8.1f} {s['p50_ms'] / TARGET_MS:>7.2f}x "
            f"{s['p95_ms'] / TARGET_MS:>7.2f}x "
            f"{s['queries']:>7} {s['sql_ms']:>8.1f} {r.others:>6.0%}"
        )
    return "\n".join(lines)


def _sql_listing(results: list[Result], width: int) -> str:
    lines = []
    for r in results:
        lines.append(f"\n{r.label}: {r.url}")
        for ms, sql in r.queries:
            text = " ".join(sql.split())
            lines.append(f"  {ms:8.1f} ms  {text[:width]}{'...' if len(text) > width else ''}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument(
        "--history-every", type=int, default=4, help="history for 1 task in K (0: none)"
    )
    parser.add_argument("--db", default=os.environ.get("BENCH_DASHBOARD_PG_NAME", "tt_bench10m"))
    parser.add_argument("--reload", action="store_true", help="load a fresh data set")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument("--depth", type=int, default=50, help="the keyset page to time")
    parser.add_argument("--only", default="", help="comma-separated page labels (prefixes)")
    parser.add_argument("--explain-over", type=float, default=20.0, metavar="MS")
    parser.add_argument("--sql-width", type=int, default=220, help="characters of SQL shown")
    parser.add_argument("--write", type=int, default=0, metavar="N", help="time the write path")
    parser.add_argument("--index", action="append", default=[], metavar="SQL")
    parser.add_argument("--drop-index", action="append", default=[], metavar="NAME")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=30.0,
        metavar="S",
        help="before each page, wait up to S seconds for the machine to be idle",
    )
    parser.add_argument(
        "--retry-noisy",
        type=int,
        default=2,
        metavar="K",
        help=f"measure again (up to K times) when others took > {procstat.NOISY * 100:g} %% CPU",
    )
    parser.add_argument("--write-repeat", type=int, default=3, metavar="R")
    parser.add_argument("--no-pages", action="store_true", help="only --write and the indexes")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # procstat counts the backends serving this database as ours, the others' as others.
    os.environ["BENCH_PG_NAME"] = args.db
    spec = bulkload.Spec(args.tasks, args.history_every)
    stored = prepare(args.db, spec, args.reload)
    print(f"data set: {stored['spec']}, {_age(stored)}, load took {stored['seconds']}")
    if args.load_only:
        return 0
    apply_indexes(args.index, args.drop_index)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(
        username=STAFF, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    found = [] if args.no_pages else pages(client, args.depth)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    if only:
        found = [p for p in found if any(p.label.startswith(o) for o in only)]
    results = []
    for page in found:
        print(f"measuring {page.label}: {page.url}", file=sys.stderr, flush=True)
        attempts = []
        for _ in range(1 + args.retry_noisy):
            procstat.wait_idle(args.wait_idle)
            attempts.append(measure(client, page, args.runs, args.warmup))
            if attempts[-1].others <= procstat.NOISY or min(attempts[-1].times_ms) > SLOW_S * 1000:
                break
            print(f"  noisy (others took {attempts[-1].others:.0%}); again", file=sys.stderr)
        results.append(min(attempts, key=lambda r: r.others))

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    commit = procstat.git_describe() or "unknown"
    print(
        f"\ndashboard pages: {args.runs} timed requests each after {args.warmup} warm-up, "
        f"Django test client, staff user; target {TARGET_MS:.0f} ms\n"
        f"tasktrail {commit}, {version}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, database {args.db}\n"
    )
    payload: dict[str, Any] = {
        "config": vars(args) | {"json": str(args.json)},
        "dataset": stored,
        "commit": commit,
        "postgres": version,
    }
    if results:
        payload |= _report_pages(args, results)
    payload |= _report_indexes()
    if args.write:
        procstat.wait_idle(args.wait_idle)
        runs = [write_path(args.write) for _ in range(args.write_repeat)]
        written = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        payload["write_path"] = written
        print(
            f"\nwrite path, {args.write} tasks x {args.write_repeat}, 200 rows per flush "
            f"(median): {written}"
        )
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


def _report_pages(args: argparse.Namespace, results: list[Result]) -> dict[str, Any]:
    print(_table(results))
    print("\nSQL per page (one extra request; ms each):")
    print(_sql_listing(results, args.sql_width))
    plans = {}
    for r in results:
        slowest = max(r.queries, default=None)
        if slowest is None or slowest[0] < args.explain_over:
            continue
        print(f"\nEXPLAIN (ANALYZE, BUFFERS), {r.label}, slowest query ({slowest[0]:.1f} ms):")
        print(f"  {' '.join(slowest[1].split())[: args.sql_width * 3]}")
        plan = explain(slowest[1])
        plans[r.label] = plan
        print("\n".join(f"  {line}" for line in plan))
    stuck_ms = stuck_when_healthy()
    print(
        f"\noverview.stuck(): {stuck_ms[0]:.1f} ms as loaded (stuck tasks exist), "
        f"{stuck_ms[1]:.1f} ms with none stuck"
    )
    filled = completeness()
    print("\nfirst page of each filtered list (tasktrail.store.queries.page, limit 50):")
    for label, n, stopped, ms in filled:
        note = ", scan stopped (more behind the next link)" if stopped else ""
        print(f"  {label:<28} {n:>3} tasks in {ms:6.1f} ms{note}")
    return {
        "pages": [r.summary() | {"sql": r.queries} for r in results],
        "plans": plans,
        "stuck_ms": stuck_ms,
        "completeness": filled,
    }


def _report_indexes() -> dict[str, Any]:
    size = table_size()
    print(f"\ntask table: {size / 2**20:,.0f} MiB; indexes:")
    listed = indexes()
    for _, definition, nbytes in listed:
        print(f"  {nbytes / 2**20:8,.0f} MiB  {definition}")
    missing, extra = drift(listed)
    if missing:
        print(f"  declared by the models but missing here: {', '.join(missing)}")
    if extra:
        print(f"  not declared by the models (experiments): {', '.join(extra)}")
    return {"indexes": listed, "table_bytes": size}


if __name__ == "__main__":
    raise SystemExit(main())
