"""Prometheus metrics: what the endpoint exports, built fresh at each scrape.

Names follow Prometheus' conventions (``tasktrail_`` prefix, base units, ``_total`` on
counters); docs/how-to/metrics.md sets them beside celery-exporter's. Sources, each
cheap at 10 M tasks (bench/README.md has the scrape times):

- counters and histograms from the rollup table every flush adds to
  (:mod:`tasktrail.store.rollup`): monotonic although expiry deletes task rows;
- gauges of tasks running, waiting and stuck from counts over partial indexes, capped
  (:func:`tasktrail.store.overview.gauges`);
- workers from their heartbeat rows, queue depths from the broker
  (:mod:`tasktrail.queues`, bounded by ``BROKER_TIMEOUT``; ``tasktrail_broker_up`` says
  whether it answered).

A registry of its own per scrape, holding one collector: nothing is kept in the web
process between scrapes, so every process of a deployment answers the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import celery
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import queues, system
from .store import overview, rollup

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The histograms' metric name for each rollup kind.
HISTOGRAMS = {
    rollup.WAIT: (
        "tasktrail_task_wait_seconds",
        "Queue wait (sent to started) of tasks that succeeded or failed at their first "
        "attempt; a retried task is left out, so no retry countdown counts.",
    ),
    rollup.RUN: (
        "tasktrail_task_runtime_seconds",
        "Run time (started to finished) of tasks that succeeded or failed.",
    ),
}


def _counters(found: list[rollup.Counter]) -> Iterator[Metric]:
    tasks = CounterMetricFamily(
        "tasktrail_tasks",
        "Tasks that reached a final state, by name and state.",
        labels=["name", "state"],
    )
    retries = CounterMetricFamily(
        "tasktrail_task_retries", "Retries asked for, by task name.", labels=["name"]
    )
    buckets: dict[str, dict[str, dict[str, rollup.Counter]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for c in found:
        if c.kind == rollup.TASKS:
            tasks.add_metric([c.name, c.label], c.count)
        elif c.kind == rollup.RETRIES:
            retries.add_metric([c.name], c.count)
        elif c.kind in HISTOGRAMS:
            buckets[c.kind][c.name][c.label] = c
    yield tasks
    yield retries
    for kind, (metric, help_text) in HISTOGRAMS.items():
        family = HistogramMetricFamily(metric, help_text, labels=["name"])
        for name, by_label in sorted(buckets[kind].items()):
            cumulative, total, points = 0, 0.0, []
            for label in rollup.LABELS:
                held = by_label.get(label)
                if held is not None:
                    cumulative += held.count
                    total += held.total
                points.append((label, cumulative))
            family.add_metric([name], points, sum_value=total)
        yield family


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


class _Collector(Collector):
    def __init__(self, app: celery.Celery, now: datetime) -> None:
        self.app = app
        self.now = now

    def collect(self) -> Iterator[Metric]:
        yield from _counters(rollup.read())
        gauges = overview.gauges(self.now)
        yield _gauge("tasktrail_tasks_running", "Tasks running now.", gauges.running)
        yield _gauge(
            "tasktrail_tasks_waiting",
            "Tasks sent and not started (PENDING, RECEIVED).",
            gauges.waiting,
        )
        yield _gauge(
            "tasktrail_tasks_stuck", "Tasks not done and unchanged for STUCK_AFTER.", gauges.stuck
        )
        fleet = system.fleet(self.now)
        yield _gauge("tasktrail_workers_alive", "Workers heartbeating now.", fleet.alive)
        up = GaugeMetricFamily(
            "tasktrail_worker_up", "1 while the worker heartbeats.", labels=["hostname"]
        )
        active = GaugeMetricFamily(
            "tasktrail_worker_tasks_active",
            "Tasks running on the worker, at its last heartbeat.",
            labels=["hostname"],
        )
        for w in fleet.workers:
            up.add_metric([w.status.hostname], 1 if w.status.alive else 0)
            if w.status.alive:
                active.add_metric([w.status.hostname], w.status.active)
        yield up
        yield active
        yield from self._queues()

    def _queues(self) -> Iterator[Metric]:
        waiting, _ = overview.waiting_by_queue()
        broker = queues.read(self.app, system.queue_names(self.app, [w.queue for w in waiting]))
        yield _gauge(
            "tasktrail_broker_up", "1 when the broker answered this scrape.", 1 if broker.up else 0
        )
        depth = GaugeMetricFamily(
            "tasktrail_queue_messages", "Messages ready in the broker's queue.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "tasktrail_queue_consumers",
            "Consumers of the queue (RabbitMQ; Redis keeps none).",
            labels=["queue"],
        )
        for q in broker.queues:
            if q.messages is not None:
                depth.add_metric([q.name], q.messages)
            if q.consumers is not None:
                consumers.add_metric([q.name], q.consumers)
        yield depth
        yield consumers


def exposition(app: celery.Celery, now: datetime) -> bytes:
    """The metrics in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app, now))
    return generate_latest(registry)
