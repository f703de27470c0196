"""Medians over repeats, ratios to the baseline, the printed tables and the JSON file."""

from __future__ import annotations

import statistics
from typing import Any

from bench import procstat
from bench.scenarios import BASELINE, SCENARIOS

_RATE_KEYS = (
    "enqueue_rate",
    "enqueue_durable_rate",
    "loaded_enqueue_rate",
    "e2e_rate",
    "store_rate",
)
_MEDIAN_KEYS = (*_RATE_KEYS, "store_lag_ms", "history_per_task")


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return statistics.median(numbers) if numbers else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario: the median of each figure over its successful runs, and ratios."""
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        ok = [r for r in runs if r["scenario"] == name and "error" not in r]
        row: dict[str, Any] = {
            "runs": len(ok),
            "failed": sum(1 for r in runs if r["scenario"] == name) - len(ok),
        }
        for key in _MEDIAN_KEYS:
            row[key] = _median([r.get(key) for r in ok])
        # The worst run, not the median: any missing row is worth seeing.
        for key in ("success_rows", "pending_rows"):
            row[key] = min((r[key] for r in ok if r.get(key) is not None), default=None)
        row["tasks"] = ok[0]["tasks"] if ok else None
        row["task_cpu_ms"] = ok[0].get("task_cpu_ms", 0.0) if ok else None
        row["preloaded"] = ok[0].get("preloaded") if ok else None
        row["cpu_ms_per_task"] = _median_dict([r.get("cpu_ms_per_task") or {} for r in ok])
        summary[name] = row
    _add_ratios(summary)
    return summary


def _median_dict(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return (
        {k: round(statistics.median(d.get(k, 0.0) for d in dicts), 3) for k in keys}
        if dicts
        else {}
    )


def _add_ratios(summary: dict[str, dict[str, Any]]) -> None:
    """``*_ratio``: to the scenario's baseline (the task doing the same work);
    ``relative_ratio``: e2e to the scenario its target names (``relative_to``)."""
    for name, row in summary.items():
        scenario = SCENARIOS[name]
        base = summary.get(scenario.baseline, {})
        row["baseline"] = scenario.baseline
        for key in _RATE_KEYS:
            reference = base.get("e2e_rate" if key == "store_rate" else key)
            value = row.get(key)
            row[f"{key}_ratio"] = value / reference if value and reference else None
        if scenario.relative_to is not None:
            other = summary.get(scenario.relative_to, {}).get("e2e_rate")
            value = row.get("e2e_rate")
            row["relative_ratio"] = value / other if value and other else None


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(ratio: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if ratio is None:
        return f">= {target:.2f}x (n/a)"
    return f">= {target:.2f}x {'met' if ratio >= target else 'MISSED'}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rows_cell(row: dict[str, Any], key: str) -> str:
    found, tasks = row.get(key), row.get("tasks")
    return "-" if found is None else f"{found}/{tasks}"


def _relative_verdict(row: dict[str, Any], other: str, target: float | None) -> str:
    ratio = row.get("relative_ratio")
    measured = "n/a" if ratio is None else f"{ratio:.2f}x"
    return f"{measured} of {other}, {_verdict(ratio, target)}"


def _target_cell(name: str, row: dict[str, Any]) -> str:
    scenario = SCENARIOS[name]
    if name == scenario.baseline:
        return "baseline"
    e2e = (
        _verdict(row["e2e_rate_ratio"], scenario.e2e_target)
        if scenario.relative_to is None
        else _relative_verdict(row, scenario.relative_to, scenario.e2e_target)
    )
    verdicts = [e2e, _verdict(row["enqueue_durable_rate_ratio"], scenario.enqueue_target)]
    found = "; ".join(v for v in verdicts if v)
    if found:
        return found
    return "reference (targets: 0.50x)" if scenario.backend == "django-db" else "reference"


def _rate(row: dict[str, Any], key: str) -> list[str]:
    """A rate and its ratio to the baseline: two cells."""
    return [_num(row[key]), _ratio(row[f"{key}_ratio"])]


def main_table(summary: dict[str, dict[str, Any]]) -> str:
    header = ["scenario", "enqueue/s", "xbase", "e2e tasks/s", "xbase", "SUCCESS rows/N"]
    header.append("target (e2e; enqueue)")
    rows = [
        [
            name,
            *_rate(row, "enqueue_durable_rate"),
            *_rate(row, "e2e_rate"),
            _rows_cell(row, "success_rows"),
            _target_cell(name, row),
        ]
        for name, row in summary.items()
    ]
    return _table(header, rows)


def enqueue_table(summary: dict[str, dict[str, Any]]) -> str:
    header = ["enqueue", "publish/s", "xbase", "+PENDING rows/s", "xbase", "PENDING rows/N"]
    header += ["publish/s, worker busy", "xbase"]
    rows = [
        [
            name,
            *_rate(row, "enqueue_rate"),
            *_rate(row, "enqueue_durable_rate"),
            _rows_cell(row, "pending_rows"),
            *_rate(row, "loaded_enqueue_rate"),
        ]
        for name, row in summary.items()
    ]
    return _table(header, rows)


def completion_table(summary: dict[str, dict[str, Any]]) -> str:
    header = ["completion", "e2e tasks/s", "xbase", "stored tasks/s", "xbase", "store lag ms"]
    header.append("history rows/task")
    rows = [
        [
            name,
            *_rate(row, "e2e_rate"),
            *_rate(row, "store_rate"),
            _num(row["store_lag_ms"]),
            _num(row["history_per_task"], "{:.2f}"),
        ]
        for name, row in summary.items()
    ]
    return _table(header, rows)


_LEGEND = """\
enqueue/s: N apply_async calls with no worker running, until tasktrail's PENDING rows
are written (plain publish for the others). e2e: first send until the Redis counter
shows all N tasks ran, worker running. SUCCESS rows: the store's count afterwards."""

_ENQUEUE_LEGEND = """\
publish/s: apply_async alone, no worker running; +PENDING rows/s: the same, until this
process's tasktrail buffer is written; worker busy: the publish rate during the e2e phase."""

_COMPLETION_LEGEND = """\
stored tasks/s: first send until the store's count shows all N in SUCCESS (ratio to the
baseline's e2e); store lag: from the counter reaching N to that; history rows/task:
transitions recorded per task (PENDING, RECEIVED, STARTED, SUCCESS = 4)."""

_CPU_PARTS = (
    "producer",
    "worker_main",
    "worker_pool",
    "postgres",
    "redis",
    "rabbitmq",
    "other",
    "machine",
)


def cpu_table(summary: dict[str, dict[str, Any]]) -> str:
    header = ["scenario (CPU ms/task)", *_CPU_PARTS]
    rows = [
        [name, *(_num(row["cpu_ms_per_task"].get(p), "{:.2f}") for p in _CPU_PARTS)]
        for name, row in summary.items()
    ]
    return _table(header, rows)


def _heading(config: dict[str, Any], summary: dict[str, dict[str, Any]]) -> str:
    runs = f"median of {config['repeat']} runs" if config["repeat"] > 1 else "1 run"
    lines = [
        f"tasktrail throughput: {config['tasks']} no-op tasks, {runs} per scenario, "
        f"broker {config['broker']}, {config['cpus']} CPUs",
        f"worker: {config['worker']}",
        f"tasktrail: {config['tasktrail_source']}",
        f"xbase = ratio to {BASELINE}" + _other_baselines(summary),
    ]
    for name, row in summary.items():
        loaded = row.get("preloaded")
        if loaded:
            lines.append(
                f"{name}: the store already held {loaded['spec']['tasks']:,} tasks "
                f"(database {loaded['database']}, loaded {loaded['loaded_at'][:16]})"
            )
    return "\n".join(lines)


def _other_baselines(summary: dict[str, dict[str, Any]]) -> str:
    """Which rows compare with another baseline (the same task work), if any."""
    others: dict[str, list[str]] = {}
    for name, row in summary.items():
        base = row.get("baseline", BASELINE)
        if base != BASELINE and name != base:
            others.setdefault(base, []).append(name)
    return "".join(
        f"; {', '.join(names)} to {base} (a task burning "
        f"{summary.get(base, {}).get('task_cpu_ms') or SCENARIOS[base].task_cpu_ms:g} ms of CPU)"
        for base, names in others.items()
    )


def _noise(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Warn where other processes took a visible share of the CPU during a measurement."""
    notes = []
    for name, row in summary.items():
        share = procstat.others_share(row["cpu_ms_per_task"])
        if share > procstat.NOISY:
            notes.append(f"noisy: other processes took {share:.0%} of the CPU during {name}")
    return ["\n".join(notes)] if notes else []


def render(summary: dict[str, dict[str, Any]], config: dict[str, Any]) -> str:
    failed = [
        f"{name}: {row['failed']} run(s) failed" for name, row in summary.items() if row["failed"]
    ]
    return "\n\n".join(
        [
            _heading(config, summary),
            main_table(summary),
            _LEGEND,
            *failed,
            *_noise(summary),
            enqueue_table(summary),
            _ENQUEUE_LEGEND,
            completion_table(summary),
            _COMPLETION_LEGEND,
            "CPU ms per task in the end-to-end phase, by process (machine = busy time of all\n"
            "cores; other = machine minus the parties named, i.e. anything else running)",
            cpu_table(summary),
        ]
    )
