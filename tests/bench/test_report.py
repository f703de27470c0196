"""bench.report: which baseline each scenario's ratios are taken to, and its target's verdict.

Pure functions over run results shaped as ``bench.run`` writes them; the figures are made
up so that each ratio is known exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import report


def _run(name: str, e2e: float, enqueue: float = 1000.0, **extra: Any) -> dict[str, Any]:
    return {
        "scenario": name,
        "tasks": 100,
        "enqueue_rate": enqueue,
        "enqueue_durable_rate": enqueue,
        "loaded_enqueue_rate": enqueue,
        "e2e_rate": e2e,
        "store_rate": e2e,
        "success_rows": 100,
        "pending_rows": 100,
        "cpu_ms_per_task": {"producer": 0.5, "machine": 2.0, "other": 0.0},
        **extra,
    }


def _config() -> dict[str, Any]:
    return {
        "tasks": 100,
        "repeat": 1,
        "broker": "redis://127.0.0.1:6379/14",
        "cpus": 2,
        "worker": "-m celery worker",
        "tasktrail_source": "installed",
    }


def test_a_busy_task_compares_with_the_baseline_that_does_the_same_work() -> None:
    summary = report.summarise(
        [
            _run("celery-ignore", 800.0),
            _run("celery-ignore-5ms", 200.0, task_cpu_ms=5.0),
            _run("tasktrail-postgres-5ms", 190.0, task_cpu_ms=5.0),
        ]
    )
    row = summary["tasktrail-postgres-5ms"]
    assert row["baseline"] == "celery-ignore-5ms"
    assert row["e2e_rate_ratio"] == pytest.approx(0.95)
    assert summary["celery-ignore-5ms"]["e2e_rate_ratio"] == pytest.approx(1.0)
    assert report._target_cell("tasktrail-postgres-5ms", row) == ">= 0.97x MISSED"
    assert report._target_cell("celery-ignore-5ms", summary["celery-ignore-5ms"]) == "baseline"
    heading = report._heading(_config(), summary)
    assert "tasktrail-postgres-5ms to celery-ignore-5ms (a task burning 5 ms of CPU)" in heading


def test_the_preloaded_store_is_judged_against_the_empty_one() -> None:
    loaded = {
        "database": "bench_x",
        "spec": {"tasks": 10_000_000, "history_every": 4, "version": 1},
        "loaded_at": "2026-12-02T06:00:00+00:00",
    }
    summary = report.summarise(
        [
            _run("celery-ignore", 800.0),
            _run("tasktrail-postgres", 600.0, enqueue=900.0),
            _run("tasktrail-postgres-10m", 570.0, enqueue=900.0, preloaded=loaded),
        ]
    )
    row = summary["tasktrail-postgres-10m"]
    assert row["relative_ratio"] == pytest.approx(0.95)
    # Still the baseline's ratio in the xbase columns.
    assert row["e2e_rate_ratio"] == pytest.approx(570 / 800)
    assert report._target_cell("tasktrail-postgres-10m", row) == (
        "0.95x of tasktrail-postgres, >= 0.90x met; >= 0.80x met"
    )
    heading = report._heading(_config(), summary)
    assert "tasktrail-postgres-10m: the store already held 10,000,000 tasks" in heading
    assert "database bench_x, loaded 2026-12-02T06:00" in heading


def test_the_preloaded_store_without_its_empty_twin_says_so() -> None:
    summary = report.summarise(
        [_run("celery-ignore", 800.0), _run("tasktrail-postgres-10m", 500.0)]
    )
    cell = report._target_cell("tasktrail-postgres-10m", summary["tasktrail-postgres-10m"])
    assert cell.startswith("n/a of tasktrail-postgres, >= 0.90x (n/a)")


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ("celery-null", "reference"),
        ("celery-redis", "reference"),
        ("dcr-postgres", "reference (targets: 0.50x)"),
        ("tasktrail-signals", ">= 0.80x met"),
    ],
)
def test_reference_rows(name: str, cell: str) -> None:
    summary = report.summarise([_run("celery-ignore", 800.0), _run(name, 400.0)])
    assert report._target_cell(name, summary[name]) == cell
    assert name in report.render(summary, _config())
