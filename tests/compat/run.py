"""Celery's own integration suite with tasktrail as the result backend, beside others.

``python -m tests.compat.run`` (``make compat``) fetches the sdist of the installed
Celery into build/compat/ (once; later runs are offline), then runs its
``t/integration/test_tasks.py`` and ``test_canvas.py`` once per backend on a real Redis
broker, and prints passed/failed/skipped per backend and every test whose outcome
differs. Exit status 1 when a tasktrail backend fails a test another backend passes,
unless tests/compat/differences.toml lists it with the reason: a deliberate difference,
or a known gap (printed on every run; ``--strict`` fails on those too).

Each backend's outcomes are kept in build/compat/outcomes/, and ``--save-reference``
writes the reference backends' (django-db, redis) into tests/compat/reference-celery-
<version>.json; a run of tasktrail's backends alone (CI) compares with those.

``--jobs N`` runs N backends at once, each on a private ``redis-server`` of its own (on a
free port, stopped after), so no two share a broker; otherwise the runs take turns on
``COMPAT_BROKER`` (default ``redis://127.0.0.1:6379/8``, flushed before each).
``COMPAT_PG_NAME`` names the PostgreSQL database the run creates.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import celery

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "compat"
DIFFERENCES = Path(__file__).with_name("differences.toml")
REFERENCE = Path(__file__).with_name(f"reference-celery-{celery.__version__}.json")
SAVED = BUILD / "outcomes" / celery.__version__
FILES = ("t/integration/test_tasks.py", "t/integration/test_canvas.py")
BROKER = os.environ.get("COMPAT_BROKER", "redis://127.0.0.1:6379/8")
#: name -> environment of the run. tasktrail's first; the others are the references.
BACKENDS: dict[str, dict[str, str]] = {
    "tasktrail-sqlite": {"TEST_BACKEND": "tasktrail", "COMPAT_DB": "sqlite"},
    "tasktrail-postgres": {"TEST_BACKEND": "tasktrail", "COMPAT_DB": "postgres"},
    "django-db": {"TEST_BACKEND": "django-db", "COMPAT_DB": "sqlite"},
    "redis": {"TEST_BACKEND": "{broker}"},
}
OURS = tuple(name for name in BACKENDS if name.startswith("tasktrail"))
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Run:
    backend: str
    outcomes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    saved: bool = False

    @property
    def label(self) -> str:
        return f"{self.backend} (saved)" if self.saved else self.backend

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def suite() -> Path:
    """Celery's integration tests for the installed version, fetched once into build/."""
    version = celery.__version__
    source = BUILD / f"celery-{version}"
    if (source / "t" / "canvas_helpers.py").exists():
        return source
    BUILD.mkdir(parents=True, exist_ok=True)
    archive = BUILD / f"celery-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"celery=={version}", "-d", str(BUILD)],
            check=True,
        )  # fmt: skip
    prefix = f"celery-{version}/"
    wanted = (
        *(f"{prefix}t/{name}" for name in ("__init__.py", "canvas_helpers.py", "integration/")),
        f"{prefix}pyproject.toml",
    )
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(wanted)]
        tar.extractall(BUILD, members=members, filter="data")
    return source


def flush(broker: str) -> None:
    import redis

    redis.Redis.from_url(broker).flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_redis(backend: str) -> tuple[subprocess.Popen[bytes], int]:
    import redis

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--logfile", str(BUILD / f"{backend}-redis.log")],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return server, port
        except redis.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"a private redis-server for {backend} did not start on port {port}")


def run(backend: str, source: Path, extra: list[str], private: bool) -> Run:
    server = None
    env = {**os.environ}
    if private:
        server, port = private_redis(backend)
        broker = f"redis://127.0.0.1:{port}/0"
        # Celery's tasks reach Redis directly too (tasks.get_redis_connection).
        env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(port))
    else:
        broker = BROKER
        flush(broker)
    junit = BUILD / f"{backend}.xml"
    env.update(
        {k: v.format(broker=broker) for k, v in BACKENDS[backend].items()},
        TEST_BROKER=broker,
        DJANGO_SETTINGS_MODULE="tests.compat.settings",
        COMPAT_DIR=str(BUILD),
        COMPAT_RUN=backend,
        PYTHONPATH=os.pathsep.join([str(source), str(ROOT), str(ROOT / "src")]),
    )
    if backend == "tasktrail-postgres":
        env["COMPAT_PG_NAME"] = os.environ.get("COMPAT_PG_NAME", "test_tasktrail_compat")
    started = time.monotonic()
    try:
        with (BUILD / f"{backend}.log").open("wb") as log:
            subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
                 "-p", "celery.contrib.pytest", "-p", "tests.compat.plugin",
                 "--timeout=300", "-q", "--no-header", "-rfE",
                 f"--junitxml={junit}", *FILES, *extra],
                cwd=source, env=env, check=False, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    result = Run(backend, seconds=time.monotonic() - started)
    if junit.exists():
        result.outcomes = outcomes(junit)
        junit.unlink()
        save(result)
    print(f"{backend}: {result.count(PASSED)} passed, {result.count(FAILED)} failed, "
          f"{result.count(SKIPPED)} skipped in {result.seconds:.0f} s "
          f"(log: {BUILD / f'{backend}.log'})", flush=True)  # fmt: skip
    return result


def save(r: Run) -> None:
    SAVED.mkdir(parents=True, exist_ok=True)
    data = {"seconds": round(r.seconds), "outcomes": r.outcomes}
    (SAVED / f"{r.backend}.json").write_text(json.dumps(data, indent=1, sort_keys=True))


def saved(backend: str) -> Run | None:
    """The backend's outcomes from an earlier run here, else from the reference file."""
    mine = SAVED / f"{backend}.json"
    if mine.exists():
        data = json.loads(mine.read_text())
    elif REFERENCE.exists():
        data = json.loads(REFERENCE.read_text()).get(backend)
        if data is None:
            return None
    else:
        return None
    return Run(backend, data["outcomes"], data["seconds"], saved=True)


def save_reference(runs: list[Run]) -> None:
    refs = {r.backend: {"seconds": round(r.seconds), "outcomes": r.outcomes}
            for r in runs if r.backend not in OURS and r.outcomes}  # fmt: skip
    REFERENCE.write_text(json.dumps(refs, indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE.relative_to(ROOT)}")


def outcomes(junit: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        test = f"{case.get('classname', '').removeprefix('t.integration.')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            found[test] = FAILED
        elif "skipped" in tags:
            found[test] = SKIPPED
        else:
            found[test] = PASSED
    return found


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str  # "deliberate" or "gap"
    reason: str


def differences() -> dict[str, Difference]:
    """Tests where tasktrail answers otherwise than Celery: on purpose, or a known gap."""
    with DIFFERENCES.open("rb") as f:
        listed = tomllib.load(f)
    found = {}
    for test, entry in listed.items():
        if entry.get("kind") not in ("deliberate", "gap") or not entry.get("reason"):
            raise SystemExit(f"{DIFFERENCES.name}: {test!r} needs kind (deliberate|gap), reason")
        found[test] = Difference(entry["kind"], entry["reason"])
    return found


def report(runs: list[Run], strict: bool = False) -> int:
    print(f"\nCelery {celery.__version__}: {', '.join(FILES)}; broker {BROKER}\n")
    print(f"{'backend':<26} {'passed':>7} {'failed':>7} {'skipped':>8} {'seconds':>8}")
    for r in runs:
        print(
            f"{r.label:<26} {r.count(PASSED):>7} {r.count(FAILED):>7} "
            f"{r.count(SKIPPED):>8} {r.seconds:>8.0f}"
        )
    ran = {t for r in runs if not r.saved for t in r.outcomes}
    tests = sorted({t for r in runs for t in r.outcomes} & ran)
    differ = [t for t in tests if len({r.outcomes.get(t, "-") for r in runs}) > 1]
    if differ:
        print("\nOutcomes that differ:")
        print("  " + "  ".join(f"{r.backend:>18}" for r in runs) + "  test")
        for t in differ:
            print("  " + "  ".join(f"{r.outcomes.get(t, '-'):>18}" for r in runs) + f"  {t}")
    listed = differences()
    bad = [
        (r.backend, t)
        for r in runs
        if r.backend in OURS and not r.saved
        for t, outcome in r.outcomes.items()
        if outcome == FAILED
        and any(o.outcomes.get(t) == PASSED for o in runs if o.backend not in OURS)
    ]
    gaps = [(b, t) for b, t in bad if t in listed and listed[t].kind == "gap"]
    deliberate = [(b, t) for b, t in bad if t in listed and listed[t].kind == "deliberate"]
    unlisted = [(b, t) for b, t in bad if t not in listed]
    for title, found in (
        ("deliberate differences (tests/compat/differences.toml)", deliberate),
        ("KNOWN GAPS, to fix in tasktrail (tests/compat/differences.toml)", gaps),
        ("tasktrail fails what another backend passes (not in differences.toml)", unlisted),
    ):
        if found:
            print(f"\n{title}:")
            for backend, t in found:
                print(f"  {backend}: {t}")
    if unlisted or (strict and gaps):
        return 1
    if not ran:
        print("\nno test ran")
        return 1
    if not any(r.backend not in OURS for r in runs):
        print(f"\nno reference backend ran or was saved ({REFERENCE.name}): nothing to compare")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, of: {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="backends run at once")
    parser.add_argument(
        "--save-reference",
        action="store_true",
        help=f"write the reference backends' outcomes to tests/compat/{REFERENCE.name}",
    )
    parser.add_argument(
        "--strict", action="store_true", help="known gaps in differences.toml fail the run too"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    source = suite()
    private = args.jobs > 1
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda b: run(b, source, args.pytest_args, private), chosen))
    runs += [r for b in BACKENDS if b not in chosen and (r := saved(b)) is not None]
    if args.save_reference:
        save_reference(runs)
    return report(runs, args.strict)


if __name__ == "__main__":
    sys.exit(main())
