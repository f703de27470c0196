"""The scenarios compared, as plain data (imported by the settings, so no Django here)."""

from __future__ import annotations

import dataclasses
from typing import Literal

Store = Literal["none", "postgres", "sqlite"]
Backend = Literal["none", "django-db", "tasktrail"]


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    store: Store
    backend: Backend
    #: Throughput target as a ratio to the baseline, when the design sets one.
    e2e_target: float | None
    #: Enqueue target as a ratio to the baseline (the PENDING row at publish).
    enqueue_target: float | None
    note: str
    #: ``CELERY_DB_REUSE_MAX``; 0 keeps Celery's default (a new connection per task).
    db_reuse_max: int = 0

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
    def state_column(self) -> str:
        return "status" if self.backend == "django-db" else "state"


BASELINE = "celery-ignore"

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(BASELINE, "none", "none", None, None, "Celery, results ignored (baseline)"),
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
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
