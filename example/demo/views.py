"""The demo page: start a scenario, watch its status live, revoke it.

Each visitor is logged in as a demo user of their own when they start a task, so
tasktrail's owner rule applies: the page's live status (``{% tasktrail_status %}``)
answers only to the visitor who started the task, and 404 to everyone else. Each task
also gets a signed link (``tasktrail.status_url``) that opens its status without a
login, as a checkout or an emailed export would.
"""

from __future__ import annotations

import secrets

from celery.result import AsyncResult
from django.contrib.auth import get_user_model, login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

import tasktrail

from . import scenarios

SESSION_KEY = "demo_tasks"
# Enough to show a session's recent work; keeps the session row small.
REMEMBERED = 20


def _started(request: HttpRequest) -> list[dict[str, str]]:
    tasks: list[dict[str, str]] = request.session.get(SESSION_KEY, [])
    return tasks


def _check_started(request: HttpRequest, task_id: str) -> None:
    if not any(task["id"] == task_id for task in _started(request)):
        raise Http404("no such task in this session")


def _log_in_visitor(request: HttpRequest) -> None:
    """A demo user per visitor: the owner of the tasks they start (no password)."""
    if not request.user.is_authenticated:
        user = get_user_model().objects.create_user(f"visitor-{secrets.token_hex(6)}")
        login(request, user)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    tasks = [{**task, "link": tasktrail.status_url(task["id"])} for task in _started(request)[::-1]]
    return render(request, "demo/index.html", {"scenarios": scenarios.SCENARIOS, "tasks": tasks})


@require_POST
def start(request: HttpRequest, scenario: str) -> HttpResponse:
    if scenario not in scenarios.SCENARIOS:
        raise Http404("no such scenario")
    # Before sending: tasktrail's OwnerMiddleware records the user sending it.
    _log_in_visitor(request)
    result = scenarios.start(scenario)
    started = [*_started(request), {"id": result.id, "scenario": scenario}]
    request.session[SESSION_KEY] = started[-REMEMBERED:]
    return redirect("demo:index")


@require_POST
def revoke(request: HttpRequest, task_id: str) -> HttpResponse:
    _check_started(request, task_id)
    # terminate=True stops a task that is already running (the prefork pool
    # kills the process running it); without it, revoke only discards a task
    # that has not started yet.
    AsyncResult(task_id).revoke(terminate=True)
    return redirect("demo:index")
