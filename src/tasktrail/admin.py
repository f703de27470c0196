"""The Django admin for tasktrail: read-only views, actions through :mod:`tasktrail.services`.

Rows are written only by the store, so nobody adds, changes or deletes them here.
Everything a task carries (arguments, results, tracebacks) came from user code and is
rendered escaped, inside ``<pre>``. What a user sees follows
:func:`tasktrail.access.disclosure`, as on every other surface: Django's own admin site
lets only active staff in, who see everything, but a project's own site may let others
in, and they see no field the rule does not allow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from kombu.exceptions import OperationalError as BrokerError

from . import access, api, ids, inputs, services, states
from .exceptions import TaskNotFound
from .models import Task, Worker
from .records import Progress
from .store import names, queries
from .web import present


def _pre(text: str) -> SafeString:
    return format_html("<pre>{}</pre>", text) if text else SafeString("-")


def _json(value: Any) -> SafeString:
    return _pre("" if value is None else present.pretty(value))


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Viewing only: the store owns the rows."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class StateFilter(admin.SimpleListFilter):
    """The built-in states as choices: no ``SELECT DISTINCT`` over a large table."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s, s) for s in states.LISTED_STATES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(state=self.value()) if self.value() else queryset


class KnownFilter(admin.SimpleListFilter):
    """A task name or queue from the table of known ones (:mod:`tasktrail.store.names`):
    a few dozen rows, where Django's ``SELECT DISTINCT`` would read the whole task table.

    Among the newest :data:`~tasktrail.store.queries.SCAN` tasks, as the search box: no
    index serves a name in list order, and finding the newest 100 tasks of a name run
    once in 200,000 read 4.5 s of the 10 M-row table (bench/README.md); the dashboard's
    search pages on past that."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(v, v) for v in names.known(self.field)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(queries.recent(), **{self.field: value})


class NameFilter(KnownFilter):
    title = f"task name (latest {queries.SCAN:,} tasks)"
    parameter_name = field = "name"


class QueueFilter(KnownFilter):
    title = f"queue (latest {queries.SCAN:,} tasks)"
    parameter_name = field = "queue"


class UpdatedFilter(admin.DateFieldListFilter):
    """The admin's date filter, refusing moments no database stores as it refuses
    malformed ones (SQLite overflows converting ``9999-12-31 23:59:59`` to UTC)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        field = forms.DateTimeField()
        for values in self.used_parameters.values():
            for value in values if isinstance(values, list) else [values]:
                try:
                    moment = field.clean(value)
                    if moment is not None:
                        inputs.moment(moment)
                except (forms.ValidationError, inputs.Refused) as error:
                    raise IncorrectLookupParameters(error) from None
        return super().queryset(request, queryset)


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts a large list by PostgreSQL's estimate, not ``COUNT(*)``: the page links
    are then approximate, the rows shown exact."""

    @cached_property
    def count(self) -> int:
        return queries.count(self.object_list)  # type: ignore[arg-type]


#: The task page's fields computed from the row, shown read-only.
_COMPUTED = (
    "progress",
    "arguments",
    "keyword_arguments",
    "outcome",
    "error",
    "traceback_text",
    "history",
)


#: The part of :class:`~tasktrail.access.Disclosure` each field of the task page needs.
_NEEDS = {
    "arguments": "arguments",
    "keyword_arguments": "arguments",
    "outcome": "outcome",
    "error": "outcome",
    "traceback_text": "traceback",
    "worker": "worker",
    "worker_pid": "worker",
    # The history table names each transition's worker.
    "history": "worker",
    "owner": "owner",
}


def _allowed(fields: Sequence[Any], shown: access.Disclosure) -> list[Any]:
    """``fields`` (names, or tuples of names on one line) without those ``shown`` hides."""
    kept: list[Any] = []
    for field in fields:
        if isinstance(field, tuple | list):
            line = tuple(_allowed(field, shown))
            if line:
                kept.append(line)
        elif field not in _NEEDS or getattr(shown, _NEEDS[field]):
            kept.append(field)
    return kept


def _level(request: HttpRequest) -> access.Level:
    return access.operator(getattr(request, "user", None))


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ("task_id", "name", "state", "queue", "progress", "worker", "updated_at")
    list_filter = (StateFilter, NameFilter, QueueFilter, ("updated_at", UpdatedFilter))
    # Searched by get_search_results, not by Django's OR of LIKEs over every row.
    search_fields = ("task_id",)
    search_help_text = (
        "A task id (exactly), a state, or part of a task name or a worker's hostname "
        f"(among the latest {queries.SCAN:,} tasks; the dashboard's search pages further)."
    )
    paginator = EstimatedCountPaginator
    ordering = ("-updated_at",)
    show_full_result_count = False
    actions = ("retry", "revoke", "revoke_and_terminate")
    fields = (
        ("task_id", "name", "queue"),
        ("state", "attempt", "max_retries", "show_result"),
        "progress",
        ("owner", "worker", "worker_pid"),
        ("parent_id", "root_id", "group_id"),
        ("sent_at", "received_at", "started_at"),
        ("finished_at", "updated_at", "next_retry_at", "expires_at"),
        *_COMPUTED[1:],
    )
    readonly_fields = _COMPUTED

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _level(request) is not access.Level.NONE and super().has_view_permission(
            request, obj
        )

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return _allowed(super().get_list_display(request), access.disclosure(_level(request)))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        shown = access.disclosure(_level(request), obj)
        return _allowed(super().get_fields(request, obj), shown)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # An id no table holds (a NUL: DataError on PostgreSQL) matches nothing.
        if not ids.valid(term):
            return queryset.none(), False
        # A task's id, exactly and case-sensitively, through the primary key (Django's
        # "=task_id" puts UPPER() on both sides: no index).
        if queryset.filter(pk=term).exists():
            return queryset.filter(pk=term), False
        return queryset.filter(
            queries.admin_search(term, access.disclosure(_level(request)).worker)
        ), False

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Task | None:
        # The change page of an id no table holds is "does not exist", not a DataError.
        if from_field is None and not ids.valid(object_id):
            return None
        return super().get_object(request, object_id, from_field)

    @admin.display(description="progress")
    def progress(self, task: Task) -> str:
        if task.progress_current is None:
            return "-"
        return str(Progress(task.progress_current, task.progress_total, task.progress_message, {}))

    @admin.display(description="args")
    def arguments(self, task: Task) -> SafeString:
        return _json(task.args)

    @admin.display(description="kwargs")
    def keyword_arguments(self, task: Task) -> SafeString:
        return _json(task.kwargs)

    @admin.display(description="result")
    def outcome(self, task: Task) -> SafeString:
        return _json(task.result)

    @admin.display(description="error")
    def error(self, task: Task) -> SafeString:
        return _pre(f"{task.error_type}: {task.error_message}" if task.error_type else "")

    @admin.display(description="traceback")
    def traceback_text(self, task: Task) -> SafeString:
        return _pre(task.traceback)

    @admin.display(description="history")
    def history(self, task: Task) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((t.at, t.state, t.attempt, t.worker) for t in api.history(task.task_id)),
        )
        head = "<tr><th>at</th><th>state</th><th>attempt</th><th>worker</th></tr>"
        return format_html("<table>{}{}</table>", SafeString(head), rows)

    def has_act_permission(self, request: HttpRequest) -> bool:
        # The dashboard's rule, so the two surfaces cannot drift apart.
        return access.may_act(request.user)

    @admin.action(description="Revoke selected tasks", permissions=["act"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._revoke(request, queryset, terminate=False)

    @admin.action(description="Revoke and terminate selected tasks", permissions=["act"])
    def revoke_and_terminate(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._revoke(request, queryset, terminate=True)

    @admin.action(description="Retry selected tasks (send again as new tasks)", permissions=["act"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(request, queryset, lambda task_id: services.retry(task_id, user=request.user))

    def _revoke(self, request: HttpRequest, queryset: QuerySet[Task], terminate: bool) -> None:
        self._each(
            request,
            queryset,
            lambda task_id: services.revoke(task_id, terminate=terminate, user=request.user),
        )

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Task],
        action: Callable[[str], services.Retried | services.Revoked],
    ) -> None:
        for task_id in queryset.values_list("task_id", flat=True):
            try:
                done = action(task_id)
            except (TaskNotFound, BrokerError, services.ActionRefused) as error:
                self.message_user(request, f"Task {task_id}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Task {task_id}: {done.message}", messages.SUCCESS)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ("hostname", "pid", "started_at", "last_seen", "active", "reserved", "status")
    search_fields = ("^hostname",)
    ordering = ("-last_seen",)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Every row is a worker's hostname.
        return access.disclosure(_level(request)).worker and super().has_view_permission(
            request, obj
        )

    @admin.display(description="status")
    def status(self, worker: Worker) -> str:
        return queries.worker_status(worker, timezone.now()).status
