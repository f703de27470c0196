"""The scenarios compared, as plain data (imported by the settings, so no Django here)."""

from __future__ import annotations

import dataclasses
from typing import Literal

Store = Literal["none", "postgres", "sqlite", "redis"]
Backend = Literal["none", "django-db", "tasktrail", "null", "redis"]

BASELINE = "celery-ignore"
#: The baseline of the scenarios whose task burns CPU (``task_cpu_ms``).
BASELINE_5MS = "celery-ignore-5ms"
#: What the ``-5ms`` scenarios' task burns, in CPU milliseconds (``time.thread_time()``).
TASK_CPU_MS = 5.0
#: Tasks already in the store of a ``preload`` scenario (``bench.bulkload``'s data set).
PRELOAD_TASKS = 10_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    store: Store
    backend: Backend
    #: Throughput target as a ratio to ``relative_to`` (else the baseline), when one is set.
    e2e_target: float | None
    #: Enqueue target as a ratio to the baseline (the PENDING row at publish).
    enqueue_target: float | None
    note: str
    #: ``CELERY_DB_REUSE_MAX``; 0 keeps Celery's default (a new connection per task).
    db_reuse_max: int = 0
    #: ``task_ignore_result=True`` with a result backend: Celery's result path is off,
    #: tasktrail records the outcome through the task signals.
    ignore_result: bool = False
    #: CPU milliseconds the task burns before its ``INCR`` (0: the no-op task).
    task_cpu_ms: float = 0.0
    #: The scenario the ``xbase`` ratios are taken to.
    baseline: str = BASELINE
    #: The e2e target compares with this scenario instead of the baseline.
    relative_to: str | None = None
    #: Tasks loaded into the store before the run (kept between runs), 0 for an empty store.
    preload: int = 0

    @property
    def apps(self) -> tuple[str, ...]:
        if self.backend == "tasktrail":
            return ("django.contrib.auth", "django.contrib.contenttypes", "tasktrail")
        if self.backend == "django-db":
            return ("django_celery_results",)
        return ()

    @property
    def success_table(self) -> str | None:
        """The table whose rows say a task finished, with its state column."""
        if self.backend == "tasktrail":
            return "tasktrail_task"
        if self.backend == "django-db":
            return "django_celery_results_taskresult"
        return None

    @property
    def counted(self) -> bool:
        """Whether the store can be asked how many tasks it holds in a state."""
        return self.success_table is not None or self.store == "redis"

    @property
    def state_column(self) -> str:
        return "status" if self.backend == "django-db" else "state"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(BASELINE, "none", "none", None, None, "Celery, results ignored (baseline)"),
        Scenario(
            "celery-null",
            "none",
            "null",
            None,
            None,
            "Celery's result path with a backend that stores nothing (bench.nullbackend)",
        ),
        Scenario(
            "celery-redis",
            "redis",
            "redis",
            None,
            None,
            "Celery's Redis result backend, its defaults (the --redis database)",
        ),
        Scenario(
            "dcr-postgres",
            "postgres",
            "django-db",
            None,
            None,
            "django-celery-results, track_started + result_extended",
        ),
        Scenario(
            "dcr-postgres-reuse",
            "postgres",
            "django-db",
            None,
            None,
            "the same, reusing the task thread's connection (CELERY_DB_REUSE_MAX=1000)",
            db_reuse_max=1000,
        ),
        Scenario(
            "tasktrail-sqlite",
            "sqlite",
            "tasktrail",
            0.80,
            0.80,
            "tasktrail backend, full tracking, SQLite WAL",
        ),
        Scenario(
            "tasktrail-postgres",
            "postgres",
            "tasktrail",
            0.90,
            0.80,
            "tasktrail backend, full tracking, PostgreSQL",
        ),
        Scenario(
            "tasktrail-signals",
            "postgres",
            "tasktrail",
            None,
            0.80,
            "the same with task_ignore_result: recorded through signals, no result value",
            ignore_result=True,
        ),
        Scenario(
            "tasktrail-postgres-10m",
            "postgres",
            "tasktrail",
            0.90,
            0.80,
            "tasktrail-postgres on a store already holding 10 M tasks (bench.bulkload)",
            relative_to="tasktrail-postgres",
            preload=PRELOAD_TASKS,
        ),
        Scenario(
            BASELINE_5MS,
            "none",
            "none",
            None,
            None,
            "Celery, results ignored, a task burning 5 ms of CPU (baseline of the -5ms rows)",
            task_cpu_ms=TASK_CPU_MS,
            baseline=BASELINE_5MS,
        ),
        Scenario(
            "tasktrail-postgres-5ms",
            "postgres",
            "tasktrail",
            0.97,
            None,
            "tasktrail-postgres, a task burning 5 ms of CPU",
            task_cpu_ms=TASK_CPU_MS,
            baseline=BASELINE_5MS,
        ),
    )
}

#: Run by ``--quick`` unless named in ``--only``: the first run loads the data set (minutes).
SLOW = tuple(name for name, s in SCENARIOS.items() if s.preload)


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
