"""Celery's own integration suite with tasktrail as the result backend, beside others.

``python -m tests.compat.run`` (``make compat``) fetches the sdist of the installed
Celery into build/compat/ (once; later runs are offline), then runs its
``t/integration/test_tasks.py`` and ``test_canvas.py`` once per backend on a real Redis
broker, and prints passed/failed/skipped per backend and every test whose outcome
differs. Exit status 1 when a tasktrail backend fails a test another backend passes,
unless tests/compat/differences.toml lists it with the reason.

Environment: ``COMPAT_BROKER`` (default ``redis://127.0.0.1:6379/8``; the run flushes
that database), ``COMPAT_PG_NAME`` (the PostgreSQL database the run creates and drops).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import celery

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "compat"
DIFFERENCES = Path(__file__).with_name("differences.toml")
FILES = ("t/integration/test_tasks.py", "t/integration/test_canvas.py")
BROKER = os.environ.get("COMPAT_BROKER", "redis://127.0.0.1:6379/8")
#: name -> environment of the run. tasktrail's first; the others are the references.
BACKENDS: dict[str, dict[str, str]] = {
    "tasktrail-sqlite": {"TEST_BACKEND": "tasktrail", "COMPAT_DB": "sqlite"},
    "tasktrail-postgres": {"TEST_BACKEND": "tasktrail", "COMPAT_DB": "postgres"},
    "django-db": {"TEST_BACKEND": "django-db", "COMPAT_DB": "sqlite"},
    "redis": {"TEST_BACKEND": BROKER},
}
OURS = tuple(name for name in BACKENDS if name.startswith("tasktrail"))
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Run:
    backend: str
    outcomes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

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


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER).flushdb()


def run(backend: str, source: Path, extra: list[str]) -> Run:
    flush_broker()
    junit = BUILD / f"{backend}.xml"
    env = {
        **os.environ,
        **BACKENDS[backend],
        "TEST_BROKER": BROKER,
        "DJANGO_SETTINGS_MODULE": "tests.compat.settings",
        "COMPAT_DIR": str(BUILD),
        "COMPAT_RUN": backend,
        "PYTHONPATH": os.pathsep.join([str(source), str(ROOT), str(ROOT / "src")]),
    }
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
         "-p", "celery.contrib.pytest", "-p", "tests.compat.plugin",
         "--timeout=300", "-q", "--no-header", "-rN",
         f"--junitxml={junit}", *FILES, *extra],
        cwd=source, env=env, check=False,
    )  # fmt: skip
    result = Run(backend, seconds=time.monotonic() - started)
    if junit.exists():
        result.outcomes = outcomes(junit)
        junit.unlink()
    return result


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


def differences() -> dict[str, str]:
    """Tests where tasktrail deliberately answers otherwise than Celery, with the reason."""
    with DIFFERENCES.open("rb") as f:
        listed = tomllib.load(f)
    return {test: entry["reason"] for test, entry in listed.items()}


def report(runs: list[Run]) -> int:
    print(f"\nCelery {celery.__version__}: {', '.join(FILES)}; broker {BROKER}\n")
    print(f"{'backend':<20} {'passed':>7} {'failed':>7} {'skipped':>8} {'seconds':>8}")
    for r in runs:
        print(
            f"{r.backend:<20} {r.count(PASSED):>7} {r.count(FAILED):>7} "
            f"{r.count(SKIPPED):>8} {r.seconds:>8.0f}"
        )
    tests = sorted({t for r in runs for t in r.outcomes})
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
        if r.backend in OURS
        for t, outcome in r.outcomes.items()
        if outcome == FAILED
        and t not in listed
        and any(o.outcomes.get(t) == PASSED for o in runs if o.backend not in OURS)
    ]
    if bad:
        print("\ntasktrail fails what another backend passes (not in differences.toml):")
        for backend, t in bad:
            print(f"  {backend}: {t}")
        return 1
    if not any(r.outcomes for r in runs):
        print("\nno test ran")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, of: {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    source = suite()
    return report([run(backend, source, args.pytest_args) for backend in chosen])


if __name__ == "__main__":
    sys.exit(main())
