"""The spool: rows a process could not write before it stopped, kept on disk until a
worker writes them.

Why: a process that exits while the database refuses or stops answering (a pool
process retired by ``--max-tasks-per-child``, a warm shutdown, a producer) would
otherwise take its unwritten final states with it, and nothing marks those tasks
afterwards (their worker's main process is alive and heartbeating). So the buffer's
bounded final flush hands what it could not write to :func:`write`: one file per
call, written to a temporary name, fsynced, then renamed, so a file either holds
every row or is not there. A worker's main process calls :func:`replay` every
heartbeat (the first one before it takes tasks): each complete file goes through
the normal guarded write, whose SQL guard makes it idempotent and order-safe (an
older spooled state never overwrites a newer stored one), and is deleted only once
its rows are committed. A worker replays every file in the directory, whichever
process wrote it.

Files are JSON: datetimes as ISO 8601 with their offset, JSON columns as the text
they already are, history details as kombu-marked JSON text, so replay writes
exactly what the process would have written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import DataError, IntegrityError, connections

from .. import conf, jsoncodec
from . import timeouts
from .buffer import Writer
from .history import HistoryEntry
from .schema import DATETIMES, Row

logger = logging.getLogger("tasktrail.store")

_FORMAT = 1
_SUFFIX = ".spool"
_PARTIAL = ".partial"
# A ``.partial`` file older than this was left by a process that died mid-write.
_STALE_PARTIAL = 3600.0
_replaying = threading.Lock()


def directory() -> Path:
    """``TASKTRAIL["SPOOL_DIR"]``, else a directory per database under the system's
    temporary directory (named after the database, so two projects on one host, or
    two test runs, never replay each other's rows)."""
    configured = conf.get().SPOOL_DIR
    if configured:
        return Path(configured)
    name = str(connections[conf.get().DATABASE].settings_dict.get("NAME") or "")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[-60:] or "default"
    return Path(tempfile.gettempdir()) / f"tasktrail-spool-{slug}"


def _encode_row(row: Row) -> dict[str, Any]:
    return {c: v.isoformat() if c in DATETIMES and v is not None else v for c, v in row.items()}


def _decode_row(data: dict[str, Any]) -> Row:
    return {
        c: datetime.fromisoformat(v) if c in DATETIMES and v is not None else v
        for c, v in data.items()
    }


def _encode_entry(entry: HistoryEntry) -> list[Any]:
    task_id, state, attempt, at, worker, detail = entry
    return [
        task_id,
        state,
        attempt,
        at.isoformat(),
        worker,
        None if detail is None else jsoncodec.dumps(detail),
    ]


def _decode_entry(data: list[Any]) -> HistoryEntry:
    task_id, state, attempt, at, worker, detail = data
    decoded = None if detail is None else jsoncodec.loads(detail)
    return HistoryEntry(task_id, state, int(attempt), datetime.fromisoformat(at), worker, decoded)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(rows: list[Row], history: list[HistoryEntry]) -> Path:
    """Keep ``rows`` and ``history`` durably for a worker to write; returns the file.

    Raises ``OSError`` if the directory is not writable (the caller logs the loss).
    """
    folder = directory()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    document = {
        "format": _FORMAT,
        "pid": os.getpid(),
        "rows": [_encode_row(r) for r in rows],
        "history": [_encode_entry(h) for h in history],
    }
    # Sorts by time, so files replay in the order they were written.
    stem = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial = folder / f"{stem}{_PARTIAL}"
    # 0600: the rows hold task arguments and results.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    final = folder / f"{stem}{_SUFFIX}"
    os.replace(partial, final)
    _fsync_directory(folder)
    return final


def pending() -> list[Path]:
    """The complete spool files, oldest first."""
    folder = directory()
    try:
        return sorted(folder.glob(f"*{_SUFFIX}"))
    except OSError:
        return []


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[Any]:
    """Hold ``path`` for this process alone, or yield ``None`` if another replays it.

    Two workers on one host may share the directory: the lock (and the check that the
    path still names the locked file) keeps a file from being written twice.
    """
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        yield handle if same else None


def _load(handle: Any) -> tuple[list[Row], list[HistoryEntry]]:
    document = json.load(handle)
    if document.get("format") != _FORMAT:
        raise ValueError(f"unknown spool format {document.get('format')!r}")
    rows = [_decode_row(r) for r in document["rows"]]
    return rows, [_decode_entry(h) for h in document["history"]]


def _set_aside(path: Path, exc: Exception) -> None:
    # Kept for an operator to read; never replayed again, never deleted.
    logger.error("tasktrail: spool file %s cannot be written (%s); renamed to .bad", path, exc)
    with contextlib.suppress(OSError):
        path.rename(path.with_suffix(".bad"))


def _remove_stale_partials() -> None:
    cutoff = time.time() - _STALE_PARTIAL
    for partial in directory().glob(f"*{_PARTIAL}"):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()


def replay() -> None:
    """Write the spooled rows through the store's guarded write: the worker upkeep's call.

    It runs on the upkeep thread, whose connection is tasktrail's own, so that
    connection gets tasktrail's connect timeout and keepalives here, files or not.
    """
    timeouts.bound(connections[conf.get().DATABASE])
    replay_into(_store_writer())


def replay_into(writer: Writer) -> int:
    """Write every complete spool file, oldest first; returns the rows written.

    Stops at the first file the database does not take (it is still unavailable; the
    next heartbeat tries again) and logs one line, not a traceback per heartbeat.
    """
    if not _replaying.acquire(blocking=False):
        return 0
    try:
        return _replay(writer)
    finally:
        _replaying.release()


def _replay(writer: Writer) -> int:
    files = pending()
    if not files:
        return 0
    written = 0
    for path in files:
        with _claimed(path) as handle:
            if handle is None:
                continue
            try:
                rows, history = _load(handle)
            except (ValueError, KeyError, TypeError) as exc:
                _set_aside(path, exc)
                continue
            try:
                writer(rows, history)
            except (DataError, IntegrityError) as exc:
                # The database answered and refuses these rows: waiting will not help,
                # and the files behind this one must not wait for it.
                _set_aside(path, exc)
                continue
            except Exception as exc:
                logger.warning(
                    "tasktrail: %d spool file(s) wait for the database (%s: %s)",
                    len(files),
                    type(exc).__name__,
                    exc,
                )
                return written
            path.unlink()
            written += len(rows)
            logger.info("tasktrail: wrote %d spooled row(s) from %s", len(rows), path.name)
    _remove_stale_partials()
    return written


def _store_writer() -> Writer:
    # Late import: the write module makes the buffer with this module's write().
    from .write import write_and_tell

    return write_and_tell
