"""The package a user installs: an sdist and a wheel built as a release builds them
(``uv build``: the wheel from the sdist), checked as the package index checks them
(``twine check --strict``), holding every file of src/tasktrail, and installable into a
fresh virtualenv, not editable, as the README's install line does."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import tasktrail
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tasktrail"


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _uv() -> tuple[str, ...]:
    try:
        import uv
    except ImportError:
        message = "uv is not installed (make install installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return (uv.find_uv_bin(),)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Without --sdist/--wheel, uv builds the sdist and then the wheel from it, as a
    # packager rebuilding from the sdist would: a file the sdist misses fails here.
    _run(*_uv(), "build", "--out-dir", out, ROOT)
    return out


def _one(dist: Path, pattern: str) -> Path:
    (found,) = dist.glob(pattern)
    return found


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_twine_check_passes(dist: Path) -> None:
    files = [_one(dist, "*.tar.gz"), _one(dist, "*.whl")]
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_the_wheel_holds_every_file_of_the_package(dist: Path) -> None:
    with zipfile.ZipFile(_one(dist, "*.whl")) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("tasktrail/")}
    source = {
        f"tasktrail/{p.relative_to(PACKAGE).as_posix()}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert packaged == source
    # What a Django app needs beside its code, named so a change of layout is noticed.
    for needed in (
        "tasktrail/py.typed",
        "tasktrail/migrations/0001_initial.py",
        "tasktrail/templates/tasktrail/widget.html",
        "tasktrail/templates/tasktrail/dashboard/base.html",
        "tasktrail/static/tasktrail/tasktrail.js",
        "tasktrail/static/tasktrail/dashboard.css",
    ):
        assert needed in packaged


def test_metadata_names_the_version_urls_and_dependencies(dist: Path) -> None:
    metadata = _metadata(_one(dist, "*.whl"))
    assert metadata["Name"] == "django-tasktrail"
    assert metadata["Version"] == tasktrail.__version__
    assert _one(dist, "*.whl").name == f"django_tasktrail-{tasktrail.__version__}-py3-none-any.whl"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL", []))
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    assert metadata["License-Expression"] == "MIT"
    requires = set(metadata.get_all("Requires-Dist", []))
    assert {"django>=5.2", "celery>=5.5"} <= requires
    classifiers = set(metadata.get_all("Classifier", []))
    assert "Typing :: Typed" in classifiers


def test_the_sdist_holds_what_rebuilds_and_tests_it(dist: Path) -> None:
    sdist = _one(dist, "*.tar.gz")
    top = f"django_tasktrail-{tasktrail.__version__}"
    with tarfile.open(sdist) as archive:
        names = {n.removeprefix(f"{top}/") for n in archive.getnames()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "uv.lock"):
        assert needed in names
    assert "src/tasktrail/__init__.py" in names
    assert "tests/conftest.py" in names
    assert not any(n.startswith((".venv/", "build/", "dist/", ".nox/")) for n in names)


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(tasktrail.__version__)}\] - ", changelog, re.M)


def test_a_fresh_virtualenv_installs_the_clone_not_editable(tmp_path: Path) -> None:
    """The README's install line until a release is on the index: `pip install <clone>`."""
    venv = tmp_path / "venv"
    _run(*_uv(), "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    _run(*_uv(), "pip", "install", "--quiet", "--python", python, ROOT)
    shown = _run(
        python, "-c",
        "import importlib.metadata as m, pathlib, tasktrail; "
        "print(tasktrail.__version__, m.version('django-tasktrail')); "
        "print(pathlib.Path(tasktrail.__file__).parent)",
        cwd=tmp_path,
    ).stdout.split("\n")  # fmt: skip
    assert shown[0] == f"{tasktrail.__version__} {tasktrail.__version__}"
    installed = Path(shown[1])
    assert "site-packages" in installed.parts
    assert (installed / "templates" / "tasktrail" / "widget.html").is_file()
