"""What the dashboard's templates show, computed from records: pure code, no queries.

Charts are drawn by the server as inline SVG (no script, no build step): this module
computes the geometry, the templates write the elements.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from .. import access, notify
from ..jsoncodec import CeleryJSONEncoder
from ..records import Action, TaskRecord, Transition
from ..store.overview import Throughput

#: The chart's drawing area, in SVG user units (it scales to the page's width).
CHART_WIDTH = 600
CHART_HEIGHT = 150


def pretty(value: Any) -> str:
    """JSON for people, indented; the template escapes it inside ``<pre>``."""
    return json.dumps(value, cls=CeleryJSONEncoder, indent=2, ensure_ascii=False, sort_keys=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    #: The finished tasks' bar, and the failed part of it (drawn over it, from the base).
    y: float
    height: float
    failed_y: float
    failed_height: float
    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    #: The failure rate as SVG polylines ("x,y x,y ..."), one per run of buckets with
    #: finished tasks: a bucket with none has no rate, so the line breaks there.
    rate_lines: list[str]
    peak: int
    first: datetime | None
    last: datetime | None
    counted_from: datetime | None
    total: int
    failed: int


def chart(throughput: Throughput) -> Chart:
    """Bars of finished tasks per bucket (failed ones in their own colour) and the
    failure rate as a line over them (0 % at the bottom, 100 % at the top)."""
    buckets = throughput.buckets
    peak = max((b.finished for b in buckets), default=0)
    step = CHART_WIDTH / max(1, len(buckets))
    scale = CHART_HEIGHT / max(1, peak)
    bars: list[Bar] = []
    runs: list[list[tuple[float, float]]] = [[]]
    for i, b in enumerate(buckets):
        x = i * step
        height, failed = b.finished * scale, b.failed * scale
        title = f"{b.start:%Y-%m-%d %H:%M} UTC: {b.finished} finished, {b.failed} failed"
        bars.append(
            Bar(
                round(x, 2),
                round(max(step - 1, 0.5), 2),
                round(CHART_HEIGHT - height, 2),
                round(height, 2),
                round(CHART_HEIGHT - failed, 2),
                round(failed, 2),
                title,
            )
        )
        if b.failure_rate is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x + step / 2, CHART_HEIGHT * (1 - b.failure_rate)))
    return Chart(
        CHART_WIDTH,
        CHART_HEIGHT,
        bars,
        [_polyline(run, step) for run in runs if run],
        peak,
        buckets[0].start if buckets else None,
        buckets[-1].start + throughput.bucket if buckets else None,
        throughput.counted_from,
        sum(b.finished for b in buckets),
        sum(b.failed for b in buckets),
    )


def _polyline(points: list[tuple[float, float]], step: float) -> str:
    if len(points) == 1:
        # A lone bucket's rate as a short level line across its bar, so it shows.
        (x, y) = points[0]
        points = [(x - step / 3, y), (x + step / 3, y)]
    return " ".join(f"{round(x, 2)},{round(y, 2)}" for x, y in points)


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One line of a task's timeline: a transition, or an operator's action."""

    at: datetime
    state: str
    attempt: int
    worker: str
    detail: dict[str, Any]
    #: How long the task stayed in this state (to the next transition, or to now).
    duration: timedelta | None
    action: str = ""
    by: str = ""


def timeline(
    history: list[Transition], actions: list[Action], record: TaskRecord, now: datetime
) -> list[Entry]:
    """Transitions with their durations, and actions in between, oldest first."""
    entries = []
    for i, t in enumerate(history):
        if i + 1 < len(history):
            until: datetime | None = history[i + 1].at
        else:
            until = None if record.ready else now
        duration = None if until is None else max(until - t.at, timedelta(0))
        entries.append(Entry(t.at, t.state, t.attempt, t.worker, t.detail, duration))
    entries += [
        Entry(a.at, "", 0, "", a.detail, None, action=a.action, by=a.by or "someone")
        for a in actions
    ]
    return sorted(entries, key=lambda e: e.at)


def rows(records: list[TaskRecord], allowed: access.Level) -> list[TaskRecord]:
    """Records for a table of tasks, each as ``allowed`` may see it."""
    return [access.redact(r, access.disclosure(allowed, r)) for r in records]


def live_row(record: TaskRecord, allowed: access.Level) -> dict[str, Any]:
    """The little a list row shows, for its live updates (never arguments or results;
    the worker to those who may see it)."""
    progress = record.progress
    row = {
        "id": record.id,
        "state": record.state,
        "phase": str(record.phase),
        "percent": None if progress is None else progress.percent,
        "progress": "" if progress is None else str(progress),
        "updated_at": record.updated_at.isoformat(),
        "version": notify.version(record),
    }
    if access.disclosure(allowed, record).worker:
        row["worker"] = record.worker
    return row
