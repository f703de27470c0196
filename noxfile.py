"""The version matrix: every Python x Django x Celery pair tasktrail claims, tested.

Each session installs tasktrail as a user gets it (the wheel built from this checkout,
not an editable install) with one Django/Celery pair and the ``test`` dependency group,
then runs the unit tests on SQLite and the real-worker module tests/integration/test_worker.py
on PostgreSQL + Redis (a real prefork worker of that session's venv). The worker module runs
on PostgreSQL, not SQLite: it is the production database, the one whose driver and
connection handling change most between Django releases, and CI runs real-worker tests
only there (tests/integration/conftest.py); SQLite gets the unit tests.

    make matrix                     # every pair, one after another (2 cores: not in parallel)
    make matrix ARGS="-s 'matrix-3.13(django6.1-celery5.7)'"   # one pair
    .venv/bin/nox -l                # the session names

The sessions' isolation follows the caller's TT_TEST_DB_NAME / TT_TMP / TT_QUEUE (with a
suffix per session), so two sessions, or two worktrees' matrices, never share a database,
a spool directory or a queue.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

PYTHONS = ["3.12", "3.13"]
DJANGOS = ["5.2", "6.0", "6.1"]
CELERYS = ["5.5", "5.6", "5.7"]
#: The two corners CI runs (.ci/run: make matrix-ci): oldest and newest of everything.
CI_SESSIONS = ["matrix-3.12(django5.2-celery5.5)", "matrix-3.13(django6.1-celery5.7)"]

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["matrix", "floor"]
nox.options.error_on_missing_interpreters = True

# pyenv's shims answer only for the versions .python-version names (3.13); naming both
# lets `python3.12` resolve too. An interpreter found on PATH without pyenv is used as is.
if shutil.which("pyenv") and "PYENV_VERSION" not in os.environ:
    os.environ["PYENV_VERSION"] = ":".join(reversed(PYTHONS))
# uv must use these interpreters, never download one (only the package index is reachable).
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def _floor(package: str) -> str:
    """The lower bound pyproject.toml declares for ``package`` (``Django>=5.2`` -> ``5.2``)."""
    for requirement in PYPROJECT["project"]["dependencies"]:
        found = re.fullmatch(rf"{package}>=([\w.]+)", requirement, flags=re.IGNORECASE)
        if found:
            return found.group(1)
    raise ValueError(f"pyproject.toml declares no '{package}>=' lower bound")


def _isolated_env(session: nox.Session) -> dict[str, str]:
    """The session's own test database, temp dir and queue, derived from the caller's."""
    slug = re.sub(r"\W+", "_", session.name).strip("_").lower()
    tmp = Path(os.environ.get("TT_TMP", "/tmp/tasktrail")) / "nox" / slug
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "TT_TEST_DB_NAME": f"{os.environ.get('TT_TEST_DB_NAME', 'test_tasktrail')}_{slug}",
        "TT_TMP": str(tmp),
        "TT_QUEUE": f"{os.environ.get('TT_QUEUE', 'celery')}_{slug}",
    }


def _install_and_test(session: nox.Session, *pins: str) -> None:
    session.install(".", *pins, *nox.project.dependency_groups(PYPROJECT, "test"))
    # The tests must run against what was installed, not against src/ of the checkout.
    session.run(
        "python", "-c",
        "import sys, celery, django, tasktrail; "
        "assert '/site-packages/' in tasktrail.__file__, tasktrail.__file__; "
        "print('tasktrail', tasktrail.__version__, 'Django', django.__version__, "
        "'Celery', celery.__version__, 'Python', sys.version.split()[0])",
    )  # fmt: skip
    env = _isolated_env(session)
    passes = {
        "unit tests on SQLite": ("-m", "not integration", "tests/unit", "sqlite"),
        "real-worker tests on PostgreSQL": (
            "-m", "integration", "tests/integration/test_worker.py", "postgres",
        ),
    }  # fmt: skip
    failed = []
    for name, (*args, database) in passes.items():
        # Both passes run even when the first fails: a pair's report is then complete.
        try:
            session.run(
                "pytest", "-p", "no:cacheprovider", *args, *session.posargs,
                env={**env, "TT_DB": database},
            )  # fmt: skip
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error("failed: " + ", ".join(failed))


@nox.session(python=PYTHONS)
@nox.parametrize(
    ("django", "celery"),
    [nox.param(d, c, id=f"django{d}-celery{c}") for d in DJANGOS for c in CELERYS],
)
def matrix(session: nox.Session, django: str, celery: str) -> None:
    """One pair at the newest patch release of each (what `pip install` gives a user)."""
    _install_and_test(session, f"Django~={django}.0", f"celery~={celery}.0")


@nox.session(python=PYTHONS[0])
def floor(session: nox.Session) -> None:
    """The oldest releases pyproject.toml allows (its lower bounds, exactly), on the oldest
    Python: the bounds are a claim too."""
    _install_and_test(session, f"Django=={_floor('Django')}", f"celery=={_floor('celery')}")
