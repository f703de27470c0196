"""Smoke test of bench.progress: a quick run completes and every task's last value lands.

Runs the command as documented (a process of its own: it sets up the bench's Django
settings on a fresh SQLite store). Nothing here looks at a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests import brokers
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "progress.json"
    command = [sys.executable, "-m", "bench.progress", "--quick", "--threads", "10"]
    command += ["--workdir", str(tmp_path), "--json", str(out), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "last stored" in done.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _check(rows: list[dict[str, Any]], expected: list[tuple[str, str, int]]) -> None:
    assert [(r["where"], r["via"], r["threads"]) for r in rows] == expected
    for row in rows:
        assert row["stored_last"] == row["tasks"] == row["threads"]
        assert row["rate"] > 0 and row["cpu_us_per_call"] >= 0
        assert row["ratio"] is not None


def test_in_this_process(tmp_path: Path) -> None:
    result = _run(tmp_path, "--no-worker")
    assert result["config"]["command"].startswith("python -m bench.progress --quick")
    _check(
        result["rows"],
        [
            ("process", "progress", 1),
            ("process", "progress", 10),
            ("process", "reporter", 1),
            ("process", "reporter", 10),
        ],
    )


@pytest.mark.integration
def test_with_a_threads_pool_worker(tmp_path: Path) -> None:
    require("Redis", "127.0.0.1", 6379)
    broker = settings.CELERY_BROKER_URL
    queue = f"bench-progress-{uuid.uuid4().hex[:8]}"
    # The bench's barrier lives in Redis, whatever the broker.
    extra = ("--via", "reporter", "--broker", broker, "--redis", brokers.spare_redis())
    extra += ("--queue", queue)
    result = _run(tmp_path, *extra)
    _check(
        result["rows"],
        [("process", "reporter", 1), ("process", "reporter", 10), ("worker", "reporter", 10)],
    )
