"""The operators' dashboard: overview, task list, task detail, and actions on tasks.

Open to staff and holders of ``TASKTRAIL["VIEW_PERMISSION"]``; everyone else gets
404 on every page, exactly as for a task they may not see. What a page shows of a task
is :func:`tasktrail.access.disclosure` of the operator and the task: every table and
page renders records (and histories) redacted by it, and the templates hide the
columns it does not allow (``sees``).
Actions (retry, revoke) are POST with CSRF, need ``access.ACTION_PERMISSION``, are
confirmed (a ``confirm()`` in the browser, else a confirmation page), and go through
:mod:`tasktrail.services`, which audits them in the task's history.

Views stay thin: reads come from :mod:`tasktrail.store`, what to show of them from
:mod:`.present`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import OperationalError as BrokerError

from .. import access, owner, runs, services, store
from ..exceptions import TaskNotFound
from ..store import audit, groups, overview, queries
from . import present, responses, search
from .views import viewer

PAGE_SIZE = 50
#: Most rows one live update asks for (a page's worth, and some).
LIVE_LIMIT = 100
#: Most rows a live list keeps: the oldest leave as new ones stream in.
LIVE_CAP = 200
# The last hour, in 1-minute bars: what an operator opening the page wants to see first.
DEFAULT_WINDOW = "hour"
CONFIRMED = "confirmed"
#: The actions' URL names.
RETRY, REVOKE = "retry", "revoke"


def _operator(request: HttpRequest) -> access.Level:
    """What the user may see of every task; 404 for those who may see none."""
    level = access.operator(viewer(request))
    if level is access.Level.NONE:
        raise Http404("not found")
    return level


def _page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    user = viewer(request)
    # What the operator sees of every task; a task's own page passes its own.
    sees = access.disclosure(access.operator(user))
    context = {"sees": sees, **context, "may_act": access.may_act(user), "operator": user}
    response = render(request, template, context)
    response["Cache-Control"] = responses.NO_STORE["Cache-Control"]
    return response


#: The same rule and frame for the canvas pages (:mod:`.groups`).
operator_level = _operator
render_page = _page


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    level = _operator(request)
    window = request.GET.get("window", DEFAULT_WINDOW)
    if window not in overview.WINDOWS:
        window = DEFAULT_WINDOW
    now = timezone.now()
    # The overview's lists (running, stuck, lost) take the task list's search.
    form = search.SearchForm(request.GET, level)
    del form.fields["id"]
    where = form.task_filter().resolved().q() if form.is_valid() else None
    if where is None:
        status = 400
        running: list[Any] = []
    else:
        status = 200
        running = overview.running(where=where)
    counts, throughput = overview.summary(window, now)
    context = {
        "now": now,
        "window": window,
        "windows": list(overview.WINDOWS),
        "counts": counts,
        "chart": present.chart(throughput),
        "timings": overview.timings(now, overview.WINDOWS[window]),
        "running": present.rows(running, level),
        "stuck": present.rows(overview.stuck(now, where=where), level) if where is not None else [],
        "lost": present.rows(overview.lost(where=where), level) if where is not None else [],
        "form": form,
        "searching": form.filtering(),
        "running_stream": _stream_url(request, "running", None, counts=True),
        "live_cap": LIVE_CAP,
        # Hostnames are the worker's: not read at all for those who may not see them.
        "workers": queries.workers(now) if access.disclosure(level).worker else [],
        "limit": overview.LIST_LIMIT,
    }
    response = _page(request, "tasktrail/dashboard/overview.html", context)
    response.status_code = status
    return response


def _stream_url(
    request: HttpRequest, kind: str, page: queries.Page | None, counts: bool = False
) -> str:
    """The live stream of the list a page shows: the same search, from its newest row
    (or from now, for a list whose newest rows are not the newest updated)."""
    query = request.GET.copy()
    for key in ("after", "id", "window"):
        query.pop(key, None)
    query["list"] = kind
    if counts:
        query["counts"] = "1"
    if page is not None and page.tasks:
        newest = page.tasks[0]
        query["from"] = queries.format_cursor((newest.updated_at, newest.id))
    else:
        query["from"] = f"{timezone.now().isoformat()},"
    return f"{reverse('tasktrail:list_events')}?{query.urlencode()}"


def _page_url(request: HttpRequest, cursor: queries.Cursor | None) -> str:
    """This list, from ``cursor`` on (from the newest task when ``None``)."""
    query = request.GET.copy()
    query.pop("after", None)
    if cursor is not None:
        query["after"] = queries.format_cursor(cursor)
    return f"{request.path}?{query.urlencode()}"


@require_GET
def task_list(request: HttpRequest) -> HttpResponse:
    level = _operator(request)
    form = search.SearchForm(request.GET, level)
    valid = form.is_valid()
    task_id = form.cleaned_data.get("id", "").strip() if valid else ""
    if task_id and store.get_many([task_id]):
        return redirect("tasktrail:task_detail", task_id=task_id)
    page = None
    if valid and not task_id:
        page = queries.page(form.task_filter(), PAGE_SIZE, form.cleaned_data["after"])
    # A later page is history: only the first one follows what is new.
    first = page is not None and not form.cleaned_data.get("after")
    context = {
        "form": form,
        "page": page,
        "tasks": present.rows(page.tasks, level) if page else [],
        "missing_id": task_id,
        "next_url": _page_url(request, page.next) if page and page.next else None,
        "first_url": _page_url(request, None) if request.GET.get("after") else None,
        # Where the live stream of this list starts: the newest row shown.
        "stream_url": _stream_url(request, "tasks", page) if first else None,
        "live_cap": LIVE_CAP,
    }
    response = _page(request, "tasktrail/dashboard/list.html", context)
    if not valid:
        response.status_code = 400
    return response


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """The current state of the tasks a page shows (``?id=..&id=..``): one query."""
    level = access.operator(viewer(request))
    if level is access.Level.NONE:
        return responses.not_found()
    wanted = request.GET.getlist("id")[:LIVE_LIMIT]
    found = store.get_many(wanted)
    return responses.json({"tasks": {i: present.live_row(r, level) for i, r in found.items()}})


# CSRF is checked here whatever the project's middleware: these pages carry the
# action forms (setting the token's cookie) and the actions themselves.
@csrf_protect
@require_GET
def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    level = _operator(request)
    try:
        record = store.get(task_id)
    except TaskNotFound:
        raise Http404("not found") from None
    sees = access.disclosure(level, record)
    visible = access.redact(record, sees)
    history = access.redact_history(store.history(task_id), sees)
    actions = audit.actions(task_id)
    shown = access.snapshot(record, level)
    context: dict[str, Any] = {
        "task": visible,
        "sees": sees,
        "shown": shown,
        "timeline": present.timeline(history, actions, visible, timezone.now()),
        "attempts": runs.from_history(history),
        "group": queries.group(record.group_id) if record.group_id else [],
        "chain_id": groups.chain_id(task_id),
        "retry_links": _retry_links(actions),
        "owner_name": None if visible.owner_id is None else owner.username(visible.owner_id),
        "can_retry": services.retryable(record),
        "can_revoke": services.revocable(record),
    }
    for key in ("args", "kwargs", "result"):
        if key in shown:
            context[f"{key}_json"] = present.pretty(shown[key])
    if record.progress and record.progress.meta:
        context["meta_json"] = present.pretty(record.progress.meta)
    return _page(request, "tasktrail/dashboard/detail.html", context)


def _retry_links(actions: list[Any]) -> dict[str, list[str]]:
    """The tasks this one was retried as, and the one it retries."""
    links: dict[str, list[str]] = {"retried_as": [], "retry_of": []}
    for action in actions:
        if action.action == services.RETRY and "retry_id" in action.detail:
            links["retried_as"].append(str(action.detail["retry_id"]))
        elif action.action == services.RETRY_OF and "original_id" in action.detail:
            links["retry_of"].append(str(action.detail["original_id"]))
    return links


def _actor(request: HttpRequest) -> Any:
    """The operator allowed to act on tasks: 404 for those who can see none, 403 for
    those who can but may not act."""
    _operator(request)
    user = viewer(request)
    if not access.may_act(user):
        raise PermissionDenied("you may not act on tasks")
    return user


def _confirm(
    request: HttpRequest, task_id: str, action: str, question: str, action_name: str
) -> HttpResponse:
    """The confirmation step a browser without JavaScript gets."""
    context = {
        "task_id": task_id,
        # Reversed, not request.path: an id holding "/" travels encoded (see urls.py).
        "action_url": reverse(f"tasktrail:{action_name}", args=[task_id]),
        "question": question,
        "fields": {k: v for k, v in request.POST.items() if k != "csrfmiddlewaretoken"},
        "action": action,
    }
    return _page(request, "tasktrail/dashboard/confirm.html", context)


def _failed(request: HttpRequest, task_id: str, error: Exception, status: int) -> HttpResponse:
    context = {"task_id": task_id, "error": str(error)}
    response = _page(request, "tasktrail/dashboard/action_failed.html", context)
    response.status_code = status
    return response


@csrf_protect
@require_POST
def retry(request: HttpRequest, task_id: str) -> HttpResponse:
    user = _actor(request)
    if request.POST.get(CONFIRMED) != "yes":
        return _confirm(request, task_id, "Retry", "Send this task again, as a new task?", RETRY)
    try:
        done = services.retry(task_id, user=user)
    except TaskNotFound:
        raise Http404("not found") from None
    except services.ActionRefused as error:
        return _failed(request, task_id, error, 409)
    except BrokerError as error:
        return _failed(request, task_id, error, 503)
    messages.success(request, f"Task {task_id}: {done.message}", fail_silently=True)
    return redirect("tasktrail:task_detail", task_id=done.new_task_id)


@csrf_protect
@require_POST
def revoke(request: HttpRequest, task_id: str) -> HttpResponse:
    user = _actor(request)
    terminate = request.POST.get("terminate") == "yes"
    if request.POST.get(CONFIRMED) != "yes":
        verb = "Revoke and terminate" if terminate else "Revoke"
        return _confirm(request, task_id, verb, f"{verb} this task?", REVOKE)
    try:
        done = services.revoke(task_id, terminate=terminate, user=user)
    except TaskNotFound:
        raise Http404("not found") from None
    except BrokerError as error:
        return _failed(request, task_id, error, 503)
    messages.success(request, f"Task {task_id}: {done.message}", fail_silently=True)
    return redirect("tasktrail:task_detail", task_id=task_id)
