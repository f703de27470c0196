"""The store: the only code that touches tasktrail's tables.

A façade; each concern has its module:

- :mod:`~.schema`: a task row's columns and how two events fold;
- :mod:`~.storable`: values made storable before buffering, and refused rows isolated;
- :mod:`~.buffer`, :mod:`~.write`, :mod:`~.sql`: the buffered, guarded write path;
- :mod:`~.history`: which transitions a task's history lists;
- :mod:`~.read`, :mod:`~.rows`: point reads, and rows mapped to frozen records;
- :mod:`~.queries`, :mod:`~.overview`: operators' lists and aggregates;
- :mod:`~.rollup`: the metrics' counters every flush adds to;
- :mod:`~.groups`, :mod:`~.audit`, :mod:`~.workers`, :mod:`~.revocations`,
  :mod:`~.expiry`: saved groups, chords' joins and chains' steps, operators' actions,
  heartbeats and leases, revokes, expiry.
"""

from __future__ import annotations

from ..exceptions import TaskNotFound
from .expiry import delete_expired
from .groups import chord_added, chord_applied, chord_failed, chord_part, chord_size, save_chain
from .groups import delete as delete_group
from .groups import restore as restore_group
from .groups import save as save_group
from .history import HistoryEntry
from .read import Identity, celery_meta, get, get_many, history, identity, recent, versions
from .schema import event
from .write import close, flush, forget, on_write, record, settle, sync

__all__ = [
    "HistoryEntry",
    "Identity",
    "TaskNotFound",
    "celery_meta",
    "chord_added",
    "chord_applied",
    "chord_failed",
    "chord_part",
    "chord_size",
    "close",
    "delete_expired",
    "delete_group",
    "event",
    "flush",
    "forget",
    "get",
    "get_many",
    "history",
    "identity",
    "on_write",
    "recent",
    "record",
    "restore_group",
    "save_chain",
    "save_group",
    "settle",
    "sync",
    "versions",
]
