"""``python -m bench.streams``: N idle live streams on one uvicorn process.

For each setup (an ASGI entry point and a middleware stack) this starts one uvicorn
process serving ``tasktrail.urls`` on PostgreSQL with the LISTEN/NOTIFY notifier, then:

1. records N tasks that stay running, and signs a link for each (anonymous viewers,
   so the streams count against N different viewers);
2. opens one stream per task from a client process of its own (raw asyncio
   connections, each an ``EventSource``'s request: it reads the snapshot, then keeps
   reading), in batches of ``--batch``, sampling the server's threads meanwhile;
3. with the N streams open and idle, reads the server's RSS and threads, then times
   ``--samples`` writes: a task's progress written through the store (``store.record``
   then ``store.flush()``, which writes and NOTIFYs) until a stream watching it (from
   this process) reads the event carrying the value; p50/p99;
4. checks the N streams are all still open, closes them and reads the threads again
   (the leases and threads of streams whose client left come back).

Entry points: ``django`` is ``django.core.asgi.get_asgi_application()`` (Django
iterates each stream itself: a thread per stream for the sync middleware);
``tasktrail`` is ``tasktrail.asgi.get_asgi_application()`` (Django's, behind
``LiveStreams``). Middleware stacks: ``project`` is the example project's
(example/exampleproject/settings.py), ``default`` is ``django-admin startproject``'s,
``none`` has none (no sync middleware: what Django alone costs per stream).

The anchor ``uvicorn/bare`` is uvicorn alone: a bare ASGI app (:func:`bare`) that
answers every request with the headers and one event of a stream, then waits for the
client to leave, with no Django and no database behind it. It is the floor any ASGI
application under this uvicorn pays per open stream (its connection, its protocol and
h11 objects, its request task), so the other setups are read beside it; it has no
write->event latency (nothing writes to it).

Writes and reads share this process's clock. Nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import latency
from bench.database import django_postgres, recreate_postgres

ROOT = latency.ROOT
ENTRIES = ("django", "tasktrail")
MIDDLEWARE = {
    # example/exampleproject/settings.py
    "project": [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "tasktrail.middleware.OwnerMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    # django-admin startproject (Django 5.2 to 6.1)
    "default": [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    "none": [],
}
#: The anchor: uvicorn and a bare ASGI app, no Django.
ANCHOR = "uvicorn/bare"
DEFAULT_SETUPS = (ANCHOR, "django/project", "tasktrail/project", "tasktrail/default")


def valid(setup: str) -> bool:
    """``ENTRY/MIDDLEWARE`` names a setup: the anchor, or a Django entry and stack."""
    entry, _, middleware = setup.partition("/")
    return setup == ANCHOR or (entry in ENTRIES and middleware in MIDDLEWARE)


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The anchor's application: a stream's headers and first event, then nothing until
    the client leaves (what any ASGI app must at least do to hold a stream open)."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


def settings(pg_db: str, middleware: str, streams: int) -> dict[str, Any]:
    """Django settings shared by the server and this process (the writer)."""
    base = latency.settings("postgres", "postgres")
    return {
        **base,
        "INSTALLED_APPS": [*base["INSTALLED_APPS"], "django.contrib.messages"],
        "MIDDLEWARE": MIDDLEWARE[middleware],
        "DATABASES": {"default": django_postgres(pg_db)},
        # The N idle streams and the one timed: all admitted.
        "TASKTRAIL": {"NOTIFY": "postgres", "STREAMS_PER_PROCESS": streams + 100},
    }


def configure(pg_db: str, middleware: str, streams: int) -> None:
    import django
    from django.conf import settings as django_settings

    django_settings.configure(**settings(pg_db, middleware, streams))
    django.setup()


def raise_fd_limit() -> int:
    """As many open files as the hard limit allows (one socket per stream)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def server_stack(http: str, loop: str) -> tuple[str, str]:
    """uvicorn's HTTP implementation and event loop: ``auto`` picks httptools and uvloop
    when installed (``uvicorn[standard]``), as uvicorn itself does."""
    import importlib.util

    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


def serve(
    entry: str, pg_db: str, middleware: str, streams: int, port: int, http: str, loop: str
) -> None:
    """The server process."""
    import uvicorn

    raise_fd_limit()
    if entry == "uvicorn":
        application: Any = bare
    else:
        configure(pg_db, middleware, streams)
        if entry == "tasktrail":
            from tasktrail.asgi import get_asgi_application
        else:
            from django.core.asgi import get_asgi_application
        application = get_asgi_application()
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        http=http,
        loop=loop,
    )


# -- the client process: N streams held open ------------------------------------------


async def _hold(port: int, paths: list[str], batch: int) -> None:
    writers: list[asyncio.StreamWriter] = []
    closed = 0

    async def one(path: str, ready: asyncio.Future[None]) -> None:
        nonlocal closed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"stream refused: {head[:80]!r}")
            while not (await reader.readline()).startswith(b"data: "):
                pass  # up to the snapshot
        except Exception as error:
            ready.set_exception(error)
            return
        writers.append(writer)
        ready.set_result(None)
        # Keep reading (keep-alive comments) until the server closes it.
        while await reader.read(4096):
            pass
        closed += 1

    loop = asyncio.get_running_loop()
    tasks = []
    began = time.monotonic()
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        readies = [loop.create_future() for _ in chunk]
        tasks += [asyncio.ensure_future(one(p, r)) for p, r in zip(chunk, readies, strict=True)]
        await asyncio.gather(*readies)
    seconds = round(time.monotonic() - began, 1)
    print(json.dumps({"opened": len(writers), "seconds": seconds}), flush=True)
    # Hold them until told to stop (a line on stdin), then say how many stayed open.
    await loop.run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"open": len(writers) - closed}), flush=True)
    for writer in writers:
        writer.close()
    await asyncio.sleep(1)


def hold(port: int, paths_file: Path, batch: int) -> None:
    raise_fd_limit()
    asyncio.run(_hold(port, json.loads(paths_file.read_text()), batch))


# -- the driver -------------------------------------------------------------------------


class Sampler:
    """The server's peak thread count while streams are being opened."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, latency.proc_status(self.pid)["threads"])

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed_paths(task_ids: list[str]) -> list[str]:
    from tasktrail import access

    return [f"/tasks/{t}/events/?token={access.sign(t)}" for t in task_ids]


def run(
    setup: str, streams: int, samples: int, batch: int, pg_db: str, workdir: Path, stack: str
) -> dict[str, Any]:
    entry, middleware = setup.split("/")
    # The anchor's server has no Django; this process (the client and writer) still
    # signs the links, with no middleware.
    signer_middleware = "none" if setup == ANCHOR else middleware
    http, loop = server_stack(*stack.split("/"))
    # bench.latency's client signs its link (a query) on its event loop: this process
    # is the bench's client and writer, not the server under test.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    recreate_postgres(pg_db)
    configure(pg_db, signer_middleware, streams)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    task_ids = [f"idle-{n}" for n in range(streams)]
    latency.create_tasks(task_ids)
    paths_file = workdir / "paths.json"
    paths_file.write_text(json.dumps(signed_paths(task_ids)))
    port = latency.free_port()
    server_command = [sys.executable, "-m", "bench.streams", "--serve", entry, pg_db,
                      middleware, str(streams), str(port), http, loop]  # fmt: skip
    result: dict[str, Any] = {
        "setup": setup,
        "entry": entry,
        "middleware": middleware,
        "http": http,
        "loop": loop,
    }
    server = subprocess.Popen(server_command, cwd=ROOT, env=os.environ)
    try:
        _wait_listening(port)
        # A first stream and its end: the hub, the listener and the pools are up.
        asyncio.run(_one_stream(port, entry))
        before = latency.proc_status(server.pid)
        client_command = [sys.executable, "-m", "bench.streams", "--hold", str(port),
                          str(paths_file), str(batch)]  # fmt: skip
        client = subprocess.Popen(
            client_command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert client.stdin is not None and client.stdout is not None
        with Sampler(server.pid) as sampler:
            opened = json.loads(client.stdout.readline())
        time.sleep(3)  # let the server settle
        held = latency.proc_status(server.pid)
        cpu_before = cpu_seconds(server.pid)
        # One keep-alive round (KEEPALIVE_INTERVAL, 15 s) and a bit.
        idle_for = 16.0
        time.sleep(idle_for)
        idle_cpu = cpu_seconds(server.pid) - cpu_before
        result["latency"] = (
            None if entry == "uvicorn" else asyncio.run(latency.latency(port, samples))
        )
        after_samples = latency.proc_status(server.pid)
        client.stdin.write("\n")
        client.stdin.flush()
        still_open = json.loads(client.stdout.readline())["open"]
        client.wait(60)
        time.sleep(3)
        released = latency.proc_status(server.pid)
        result.update(
            streams=streams,
            opened=opened["opened"],
            open_at_end=still_open,
            connect_seconds=opened["seconds"],
            rss_before_mib=round(before["rss_kib"] / 1024, 1),
            rss_mib=round(held["rss_kib"] / 1024, 1),
            rss_after_latency_mib=round(after_samples["rss_kib"] / 1024, 1),
            kib_per_stream=round((held["rss_kib"] - before["rss_kib"]) / streams, 1),
            threads_before=before["threads"],
            threads_peak_while_opening=sampler.peak,
            threads=held["threads"],
            threads_after_close=released["threads"],
            idle_cpu_percent=round(100 * idle_cpu / idle_for, 1),
            load=os.getloadavg(),
        )
    finally:
        server.terminate()
        server.wait(30)
    return result


async def _one_stream(port: int, entry: str) -> None:
    if entry == "uvicorn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await reader.readuntil(b"data: ")
        writer.close()
        return
    await asyncio.to_thread(latency.create_tasks, ["warm-up"])
    stream = await latency.Stream.open(port, "warm-up")
    await stream.event()
    stream.close()


def _wait_listening(port: int) -> None:
    import socket

    # Importing Django, Celery and psycopg takes a minute and more on a loaded machine.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--setup",
        action="append",
        help=f"ENTRY/MIDDLEWARE, entries {ENTRIES}, stacks {tuple(MIDDLEWARE)}, or "
        f"the anchor {ANCHOR}; repeatable "
        f"(default: {', '.join(DEFAULT_SETUPS)})",
    )
    parser.add_argument("--streams", type=int, default=10_000, help="idle streams (10000)")
    parser.add_argument("--samples", type=int, default=300, help="writes timed (300)")
    parser.add_argument("--batch", type=int, default=200, help="streams opened at once (200)")
    parser.add_argument("--pg-db", default="tasktrail_bench_streams", help="dropped, recreated")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tasktrail-bench-streams"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--uvicorn",
        default="auto/auto",
        help="HTTP/LOOP: h11 or httptools / asyncio or uvloop (auto/auto: uvicorn's choice, "
        "httptools and uvloop where installed)",
    )
    parser.add_argument("--serve", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--hold", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.serve:
        entry, pg_db, middleware, streams, port, http, loop = args.serve
        serve(entry, pg_db, middleware, int(streams), int(port), http, loop)
        return 0
    if args.hold:
        port, paths_file, batch = args.hold
        hold(int(port), Path(paths_file), int(batch))
        return 0
    setups = args.setup or list(DEFAULT_SETUPS)
    for setup in setups:
        if not valid(setup):
            print(f"unknown setup {setup!r}", file=sys.stderr)
            return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for setup in setups:
        if len(setups) > 1:
            # Django is configured once per process: each setup runs in a child.
            command = [sys.executable, "-m", "bench.streams", "--setup", setup,
                       "--streams", str(args.streams), "--samples", str(args.samples),
                       "--batch", str(args.batch), "--pg-db", args.pg_db,
                       "--workdir", str(args.workdir), "--uvicorn", args.uvicorn,
                       "--json", "-"]  # fmt: skip
            out = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
        else:
            results.append(
                run(
                    setup,
                    args.streams,
                    args.samples,
                    args.batch,
                    args.pg_db,
                    args.workdir,
                    args.uvicorn,
                )
            )
            if str(args.json) == "-":
                print(json.dumps(results[0]))
                return 0
            print(json.dumps(results[0], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
