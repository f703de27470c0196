"""Optional probe of tasktrail's write path (``--trace-flushes``): time every flush.

Wraps ``tasktrail.store.write.write`` (the function each process's flush thread calls)
before any buffer exists, and dumps per-process timings to ``<dir>/<role>-<pid>.json``
when the process stops. Used for profiling only: the headline figures are taken
without it.
"""

from __future__ import annotations

import atexit
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import signals

_entries: list[tuple[float, int, int, float, float]] = []
_state = {"role": "producer", "dir": ""}


def install(directory: str) -> None:
    from django.conf import settings

    if "tasktrail" not in settings.INSTALLED_APPS:
        return
    from tasktrail.store import write

    _state["dir"] = directory
    write.write = _timed(write.write)
    signals.worker_init.connect(_role("worker-main"), weak=False)
    signals.worker_process_init.connect(_role("pool"), weak=False)
    # Connected after tasktrail's own handler, so its final flush is counted.
    signals.worker_process_shutdown.connect(dump, weak=False)
    atexit.register(dump)


def _role(name: str) -> Callable[..., None]:
    def handler(**_: Any) -> None:
        _state["role"] = name
        _entries.clear()

    return handler


def _timed(write: Callable[[list[Any], list[Any]], None]) -> Callable[..., None]:
    def timed(rows: list[Any], history: list[Any]) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            write(rows, history)
        finally:
            _entries.append(
                (
                    start,
                    len(rows),
                    len(history),
                    time.perf_counter() - start,
                    time.thread_time() - cpu,
                )
            )

    timed.__wrapped__ = write  # type: ignore[attr-defined]
    return timed


def dump(**_: Any) -> None:
    if not _state["dir"] or not _entries:
        return
    path = Path(_state["dir"]) / f"{_state['role']}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"role": _state["role"], "thread": threading.get_ident(), "flushes": _entries})
    )


def summarise(directory: str) -> dict[str, dict[str, float]]:
    """Per role: flushes, rows per flush, wall and CPU milliseconds per flush and per row."""
    by_role: dict[str, list[list[float]]] = {}
    for path in Path(directory).glob("*.json"):
        data = json.loads(path.read_text())
        by_role.setdefault(data["role"], []).extend(data["flushes"])
    out: dict[str, dict[str, float]] = {}
    for role, flushes in sorted(by_role.items()):
        rows = [f[1] for f in flushes]
        wall = [f[3] * 1000 for f in flushes]
        cpu = [f[4] * 1000 for f in flushes]
        out[role] = {
            "flushes": len(flushes),
            "rows": sum(rows),
            "history": sum(f[2] for f in flushes),
            "rows_per_flush_median": statistics.median(rows),
            "rows_per_flush_mean": statistics.fmean(rows),
            "ms_per_flush_median": statistics.median(wall),
            "ms_per_flush_p90": statistics.quantiles(wall, n=10)[-1] if len(wall) > 1 else wall[0],
            "wall_ms_per_row": sum(wall) / max(1, sum(rows)),
            "cpu_ms_per_row": sum(cpu) / max(1, sum(rows)),
        }
    return out


def reset() -> None:
    """Forget this process's flushes so far (the producer calls it before the timed phase)."""
    _entries.clear()
