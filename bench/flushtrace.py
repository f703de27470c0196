"""Optional probe of tasktrail's write path (``--trace-flushes``): time every flush, and
the CPU of tasktrail's code on the task's own path.

Wraps ``tasktrail.store.write.write`` (the function each process's flush thread calls)
before any buffer exists, and the recorder's event builders the signal handlers and the
backend call (``published``, ``started``, ``outcome``: each includes making the event
storable and buffering it), and dumps per-process timings to ``<dir>/<role>-<pid>.json``
when the process stops. The builders are timed by thread CPU time, in place: a
microbenchmark of the same call, hot in the cache, reads about a quarter of it. Used for
profiling only: the headline figures are taken without it.
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
#: Per event builder: calls and thread CPU seconds.
_hooks: dict[str, list[float]] = {}
_state = {"role": "producer", "dir": ""}
_BUILDERS = ("published", "started", "outcome")


def install(directory: str) -> None:
    from django.conf import settings

    if "tasktrail" not in settings.INSTALLED_APPS:
        return
    from tasktrail.celery import recorder
    from tasktrail.store import write

    _state["dir"] = directory
    write.write = _timed(write.write)
    # Looked up on the module at each call, so wrapping them here is seen everywhere.
    for name in _BUILDERS:
        setattr(recorder, name, _cpu(name, getattr(recorder, name)))
    signals.worker_init.connect(_role("worker-main"), weak=False)
    signals.worker_process_init.connect(_role("pool"), weak=False)
    # Connected after tasktrail's own handler, so its final flush is counted.
    signals.worker_process_shutdown.connect(dump, weak=False)
    atexit.register(dump)


def _role(name: str) -> Callable[..., None]:
    def handler(**_: Any) -> None:
        _state["role"] = name
        _entries.clear()
        _hooks.clear()

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


def _cpu(name: str, builder: Callable[..., None]) -> Callable[..., None]:
    def timed(*args: Any, **kwargs: Any) -> None:
        cpu = time.thread_time()
        try:
            builder(*args, **kwargs)
        finally:
            found = _hooks.setdefault(name, [0, 0.0])
            found[0] += 1
            found[1] += time.thread_time() - cpu

    timed.__wrapped__ = builder  # type: ignore[attr-defined]
    return timed


def dump(**_: Any) -> None:
    if not _state["dir"] or not (_entries or _hooks):
        return
    path = Path(_state["dir"]) / f"{_state['role']}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"role": _state["role"], "thread": threading.get_ident()}
    path.write_text(json.dumps({**data, "flushes": _entries, "hooks": _hooks}))


def summarise(directory: str) -> dict[str, dict[str, float]]:
    """Per role: flushes, rows per flush, wall and CPU milliseconds per flush and per row;
    and per event builder, its calls and thread CPU microseconds per call."""
    by_role: dict[str, list[list[float]]] = {}
    hooks: dict[str, dict[str, list[float]]] = {}
    for path in Path(directory).glob("*.json"):
        data = json.loads(path.read_text())
        by_role.setdefault(data["role"], []).extend(data["flushes"])
        for name, (calls, cpu) in data.get("hooks", {}).items():
            found = hooks.setdefault(data["role"], {}).setdefault(name, [0, 0.0])
            found[0] += calls
            found[1] += cpu
    out: dict[str, dict[str, float]] = {}
    for role, flushes in sorted(by_role.items()):
        if not flushes:
            continue
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
    for role, builders in sorted(hooks.items()):
        summary = out.setdefault(role, {})
        for name, (calls, cpu) in sorted(builders.items()):
            summary[f"{name}_calls"] = calls
            summary[f"{name}_cpu_us_per_call"] = cpu * 1e6 / max(1, calls)
    return out


def reset() -> None:
    """Forget this process's flushes so far (the producer calls it before the timed phase)."""
    _entries.clear()
    _hooks.clear()
