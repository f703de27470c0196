"""Smoke test of bench.reads: a quick run on SQLite with a real worker completes and every
read answers right (SUCCESS, the task's value). Runs the command as documented (a process
of its own per store). Nothing here looks at a timing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests import brokers
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_a_quick_run_reads_every_finished_task_right(tmp_path: Path) -> None:
    require("Redis", "127.0.0.1", 6379)
    out = tmp_path / "reads.json"
    command = [sys.executable, "-m", "bench.reads", "--quick", "--only", "tasktrail-sqlite"]
    command += ["--broker", settings.CELERY_BROKER_URL, "--redis", brokers.spare_redis()]
    command += ["--queue", f"bench-reads-{uuid.uuid4().hex[:8]}", "--wait-idle", "0"]
    command += ["--workdir", str(tmp_path), "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tasktrail-sqlite  status" in done.stdout
    payload = json.loads(out.read_text())
    (run,) = payload["runs"]
    assert (run["store"], run["tasks"], run["wrong"]) == ("tasktrail-sqlite", 200, 0)
    for op in ("status", "result", "get"):
        assert run["ops"][op]["calls"] == 400 and run["ops"][op]["p50_us"] > 0
