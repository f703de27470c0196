"""CPU seconds spent by each party of a run, read from ``/proc`` (Linux only).

On a 2-core machine the producer, the worker, the database and the broker share
the same cores, so where CPU goes explains a throughput ratio better than the
ratio alone. Processes that exit during a run are still counted: their time is
added to their parent's ``cutime``/``cstime`` when they are reaped.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

Snapshot = dict[str, float]

# Other work on the machine skews every ratio; below this share of all cores the
# machine counts as idle (a Celery worker at rest stays well under it).
IDLE = 0.10
# A measurement during which other processes took more than this share of the CPU is
# noisy: it is taken again.
NOISY = 0.10
_ROOT = Path(__file__).resolve().parent.parent


def _read(pid: str) -> tuple[str, int, int, int] | None:
    """``(comm, ppid, own ticks, reaped children's ticks)`` of a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    # Fields after the command name start at field 3 (state).
    fields = text[text.rindex(")") + 2 :].split()
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    return comm, int(fields[1]), own, reaped


# A PostgreSQL backend's title: "postgres: [cluster: ]user database host(port) activity".
_BACKEND = re.compile(r" (\S+) (?:\d[\d.:]*\(\d+\)|\[local\]|[\w.-]+\(\d+\))")


def _foreign_backend(pid: int) -> bool:
    """A PostgreSQL backend serving another database (someone else's work)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return False
    match = _BACKEND.search(title)
    return match is not None and match.group(1) != os.environ.get("BENCH_PG_NAME")


def _category(pid: int, comm: str, ppid: int, producer: int, worker: int | None) -> str | None:
    if pid == producer:
        return "producer"
    if worker is not None and pid == worker:
        return "worker_main"
    if worker is not None and ppid == worker:
        return "worker_pool"
    if comm.startswith("postgres"):
        return None if _foreign_backend(pid) else "postgres"
    if comm.startswith("redis-server"):
        return "redis"
    if comm in {"beam.smp", "erl_child_setup"}:
        return "rabbitmq"
    return None


def _system_times() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine (all cores) since boot."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return 0.0, 0.0
    values = [int(v) for v in line.split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


def busy_share(seconds: float = 1.0) -> float:
    """Share of all cores busy over the next ``seconds`` (0.0 where /proc is missing)."""
    busy0, total0 = _system_times()
    time.sleep(seconds)
    busy1, total1 = _system_times()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def _system_busy() -> float:
    return _system_times()[0]


def snapshot(worker: int | None) -> Snapshot:
    producer = os.getpid()
    totals: Snapshot = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return totals
    for pid in pids:
        info = _read(pid)
        if info is None:
            continue
        comm, ppid, own, reaped = info
        category = _category(int(pid), comm, ppid, producer, worker)
        if category is None:
            continue
        ticks = own
        # Short-lived children (a backend per connection, a recycled pool process)
        # show up in their parent's reaped time only.
        if category in {"postgres", "worker_main"}:
            ticks += reaped
        totals[category] = totals.get(category, 0.0) + ticks / _TICK
    totals["machine"] = _system_busy()
    return totals


def per_task_ms(before: Snapshot, after: Snapshot, tasks: int) -> dict[str, float]:
    """CPU milliseconds per task by party; ``other`` is whatever else ran on the machine."""
    out = {
        key: round((after.get(key, 0.0) - before.get(key, 0.0)) * 1000 / tasks, 3)
        for key in sorted(set(before) | set(after))
    }
    known = sum(v for k, v in out.items() if k != "machine")
    out["other"] = round(out.get("machine", 0.0) - known, 3)
    return out


def wait_idle(limit: float, log: Callable[[str], None] | None = None) -> float:
    """Wait (up to ``limit`` s) until the machine is idle; the busy share last seen.

    ``log`` gets a line every ten seconds, to show why nothing happens.
    """
    start = time.monotonic()
    while (busy := busy_share()) > IDLE and time.monotonic() < start + limit:
        if log is not None and int(time.monotonic() - start) % 10 == 0:
            log(f"  machine {busy:.0%} busy; waiting to settle")
    return busy


def others_share(cpu_ms_per_task: dict[str, Any]) -> float:
    """Share of the machine's busy CPU that no party of the run took."""
    machine = cpu_ms_per_task.get("machine")
    return float(cpu_ms_per_task.get("other", 0.0)) / machine if machine else 0.0


def git_describe() -> str | None:
    """The checkout's ``git describe --always --dirty``, or ``None`` outside one."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return described.stdout.strip()
