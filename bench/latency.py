"""``python -m bench.latency``: live push latency and idle SSE clients per ASGI process.

For each setup (a notifier on a database) this starts one uvicorn process serving
``tasktrail.urls`` with a project's usual middleware, then, from this process:

- latency: writes a task's progress through the store (``store.record`` then
  ``store.flush()``, which writes and publishes) and times until the SSE event carrying
  that value arrives at a client reading the stream over HTTP; p50/p99 of ``--samples``
  writes spaced at random, so polling is caught at every phase of its interval;
- idle clients: opens ``--idle`` streams, each on a task of its own that does not change,
  and reads the server's RSS and threads before and after; then changes all of those
  tasks in one flush and times until every client has its event (the fan-out).

Writes and reads share this process's clock. Nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.database import django_postgres, recreate_postgres

ROOT = Path(__file__).resolve().parent.parent
SETUPS = {
    "postgres": ("postgres", "postgres"),
    "redis": ("redis", "postgres"),
    "polling": ("polling", "postgres"),
    "polling-sqlite": ("polling", "sqlite"),
}
PG_NAME = "tasktrail_bench_latency"
SQLITE_PATH = Path("/tmp/tasktrail-bench-latency.sqlite3")
REDIS_URL = "redis://127.0.0.1:6379/13"
CONNECT_BATCH = 200


def settings(notifier: str, database: str) -> dict[str, Any]:
    """Django settings shared by the server and this process (the writer)."""
    if database == "postgres":
        db = django_postgres(PG_NAME)
    else:
        db = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    return {
        "SECRET_KEY": "bench-latency-only",
        "DEBUG": False,
        "USE_TZ": True,
        "ALLOWED_HOSTS": ["*"],
        "ROOT_URLCONF": "tasktrail.urls",
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "tasktrail",
        ],
        # As a project has them: the SSE view must stay cheap behind these.
        "MIDDLEWARE": [
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "tasktrail.middleware.OwnerMiddleware",
        ],
        "DATABASES": {"default": db},
        "CELERY_BROKER_URL": "memory://",
        "TASKTRAIL": {"NOTIFY": notifier, "REDIS_URL": REDIS_URL, "POLL_INTERVAL": 0.25},
        "LOGGING_CONFIG": None,
    }


def configure(notifier: str, database: str) -> None:
    import django
    from django.conf import settings as django_settings

    django_settings.configure(**settings(notifier, database))
    django.setup()


def serve(notifier: str, database: str, port: int) -> None:
    """The server process: the Django ASGI application under uvicorn."""
    import uvicorn

    configure(notifier, database)
    from django.core.asgi import get_asgi_application

    uvicorn.run(
        get_asgi_application(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
    )


def recreate(database: str) -> None:
    if database == "sqlite":
        for path in SQLITE_PATH.parent.glob(SQLITE_PATH.name + "*"):
            path.unlink()
        return
    recreate_postgres(PG_NAME)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def server(notifier: str, database: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, "-m", "bench.latency", "--serve", notifier, database, str(port)]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        yield port, process
    finally:
        process.terminate()
        process.wait(30)


def proc_status(pid: int) -> dict[str, int]:
    """RSS (KiB) and thread count of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"])}


class Stream:
    """One SSE client over a raw connection: what a browser's EventSource does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, task_id: str) -> Stream:
        from tasktrail import access

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        path = f"/tasks/{task_id}/events/?token={access.sign(task_id)}"
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:80]!r}")
        return cls(reader, writer)

    async def event(self) -> dict[str, Any]:
        """The next event's data (chunked transfer framing and comments skipped)."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("stream closed")
            if line.startswith(b"data: "):
                data: dict[str, Any] = json.loads(line[6:])
                return data

    def close(self) -> None:
        self.writer.close()


def write(task_ids: list[str], current: float) -> float:
    """Record progress ``current`` for every task and flush; the time the write began."""
    from django.utils import timezone

    from tasktrail import store

    began = time.perf_counter()
    now = timezone.now()
    for task_id in task_ids:
        store.record(store.event(task_id, "PROGRESS", 1, now, progress_current=current))
    store.flush()
    return began


def create_tasks(task_ids: list[str]) -> None:
    from django.utils import timezone

    from tasktrail import store

    now = timezone.now()
    for task_id in task_ids:
        store.record(store.event(task_id, "STARTED", 1, now, name="bench.task"))
    store.flush()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
    }


async def wait_for(stream: Stream, current: float) -> float:
    while ((await stream.event()).get("progress") or {}).get("current") != current:
        pass
    return time.perf_counter()


async def latency(port: int, samples: int) -> dict[str, float]:
    await asyncio.to_thread(create_tasks, ["latency"])
    stream = await Stream.open(port, "latency")
    await stream.event()  # the snapshot
    seconds = []
    for sample in range(1, samples + 1):
        # Spaced over more than a polling interval, so writes land at every phase of it.
        await asyncio.sleep(random.uniform(0.02, 0.32))
        arrived = asyncio.ensure_future(wait_for(stream, float(sample)))
        began = await asyncio.to_thread(write, ["latency"], float(sample))
        seconds.append(await asyncio.wait_for(arrived, 10) - began)
    stream.close()
    return summary(seconds)


async def idle(port: int, pid: int, clients: int) -> dict[str, Any]:
    task_ids = [f"idle-{n}" for n in range(clients)]
    await asyncio.to_thread(create_tasks, task_ids)
    before = proc_status(pid)
    streams: list[Stream] = []
    for start in range(0, clients, CONNECT_BATCH):
        batch = task_ids[start : start + CONNECT_BATCH]
        streams += await asyncio.gather(*(Stream.open(port, t) for t in batch))
    await asyncio.gather(*(s.event() for s in streams))
    await asyncio.sleep(2)  # let the server settle
    after = proc_status(pid)
    arrivals = [asyncio.ensure_future(wait_for(s, -1.0)) for s in streams]
    began = await asyncio.to_thread(write, task_ids, -1.0)
    fanout = [t - began for t in await asyncio.wait_for(asyncio.gather(*arrivals), 60)]
    for stream in streams:
        stream.close()
    per_client = (after["rss_kib"] - before["rss_kib"]) / clients
    return {
        "clients": clients,
        "rss_before_mib": round(before["rss_kib"] / 1024, 1),
        "rss_after_mib": round(after["rss_kib"] / 1024, 1),
        "kib_per_client": round(per_client, 1),
        "threads_before": before["threads"],
        "threads_after": after["threads"],
        "fanout_all_changed": summary(fanout),
    }


def run(setup: str, samples: int, clients: int) -> dict[str, Any]:
    notifier, database = SETUPS[setup]
    recreate(database)
    configure(notifier, database)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with server(notifier, database) as (port, process):
        result: dict[str, Any] = {"setup": setup, "notifier": notifier, "database": database}
        result["latency"] = asyncio.run(latency(port, samples))
        if clients:
            result["idle"] = asyncio.run(idle(port, process.pid, clients))
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--setup", choices=SETUPS, help="one setup (default: each in turn)")
    parser.add_argument("--samples", type=int, default=300, help="writes timed per setup")
    parser.add_argument("--idle", type=int, default=2000, help="idle SSE clients (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--serve", nargs=3, metavar=("NOTIFIER", "DATABASE", "PORT"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.serve:
        notifier, database, port = args.serve
        serve(notifier, database, int(port))
        return 0
    if args.setup is None:
        # Django is configured once per process: each setup runs in a child of its own.
        results = []
        for setup in SETUPS:
            command = [
                sys.executable,
                "-m",
                "bench.latency",
                "--setup",
                setup,
                "--samples",
                str(args.samples),
                "--idle",
                str(args.idle),
                "--json",
                "-",
            ]
            out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout))
            print(json.dumps(results[-1]), flush=True)
    else:
        results = [run(args.setup, args.samples, args.idle)]
        if str(args.json) == "-":
            print(json.dumps(results[0]))
            return 0
        print(json.dumps(results[0], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
