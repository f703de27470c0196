"""Stopping a site a test started (``manage.py demo``, ``runserver``, a worker, uvicorn)
with everything it started, so nothing of it outlives the test.

Why more than the process's group: ``manage.py demo`` starts its worker and its web
server in sessions of their own (example/demo/processes.py), so a signal to the demo's
group never reaches them. A demo that did not stop in time left its worker running,
which went on taking the next site's tasks from the shared broker directory and held
the example's SQLite database (a demo check once found it locked for over 40 s). So the
process tree is read before the site is asked to stop (once it has exited, its children
belong to init and can no longer be found by their parent), and whatever of that tree
is still alive afterwards is killed, each with its own group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
from pathlib import Path

#: How long a site may take to stop after SIGTERM: the demo waits up to 10 s for its
#: worker's running tasks and 5 s for its web server.
GRACE = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Stopped:
    returncode: int
    #: Whether it exited within the grace after SIGTERM (or had exited before).
    in_time: bool
    #: The processes it had started that were still alive once it had exited (or the
    #: grace ran out); killed since.
    left: tuple[int, ...]


def _processes() -> dict[int, tuple[int, int, str, str]]:
    """Every process as ``pid: (parent, group, state, start time)``, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name (2nd field) may hold spaces and parentheses: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0], fields[19])
    return found


def tree(pid: int, depth: int | None = None) -> dict[int, str]:
    """The processes ``pid`` started, and theirs (``depth`` levels down; 1: its
    children), as ``pid: start time`` (which tells a process from a later one given the
    same id)."""
    table = _processes()
    found: dict[int, str] = {}
    level, parents = 0, [pid]
    while parents and (depth is None or level < depth):
        level, below = level + 1, []
        for child, (ppid, _, _, started) in table.items():
            if ppid in parents and child not in found:
                found[child] = started
                below.append(child)
        parents = below
    return found


def alive(known: dict[int, str]) -> list[int]:
    """Those of ``known`` (``pid: start time``) still running: not exited, not a zombie,
    not another process given the same id since."""
    table = _processes()
    return sorted(
        pid
        for pid, started in known.items()
        if pid in table and table[pid][3] == started and table[pid][2] != "Z"
    )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            # A session leader of its own (the demo's worker): its pool processes too.
            os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)


def _group(pgid: int) -> list[int]:
    """The live members of process group ``pgid`` but the process whose id it is (once
    that one is reaped, its id may be another process's; the group's others are its)."""
    return sorted(
        pid
        for pid, (_, group, state, _) in _processes().items()
        if group == pgid and pid != pgid and state != "Z"
    )


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = GRACE) -> Stopped:
    """Ask ``process`` to stop (SIGTERM, as a user's Ctrl-C would be) and wait up to
    ``grace`` seconds; then kill it if it is still running, what it started that is
    still alive, and what is left of its process group if it led one."""
    running = process.poll() is None
    started = tree(process.pid) if running else {}
    # Whether the group of its id is its own: while it runs, if it leads it; once it is
    # gone, if no other process has its id (then the group's members are its leftovers).
    leads = os.getpgid(process.pid) == process.pid if running else process.pid not in _processes()
    in_time = True
    if running:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            in_time = False
    left = alive(started)
    if process.poll() is None:
        process.kill()
    for pid in [*left, *(_group(process.pid) if leads else [])]:
        _kill(pid)
    process.wait()
    return Stopped(process.returncode, in_time, tuple(left))


def free_port() -> int:
    """A TCP port nothing listens on now, for a site to serve on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
