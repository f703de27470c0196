"""The site builds with ``mkdocs build --strict``: broken links and anchors fail it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .pages import ROOT


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (site / "index.html").is_file()
    assert (site / "reference" / "settings" / "index.html").is_file()
