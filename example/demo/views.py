"""The demo page: start a scenario, watch its status live, revoke it.

Each visitor is logged in as a demo user of their own when they start a task, so
tasktrail's owner rule applies: the page's live status (``{% tasktrail_status %}``)
answers only to the visitor who started the task (and to staff), and 404 to everyone
else. Each task also gets a signed link (``tasktrail.status_url``) that opens its status
without a login, as a checkout or an emailed export would.

The tasks a browser started are listed from a signed cookie, not the session: logging in
as the operator replaces the session (Django flushes it when the user changes), and the
page must still list them.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from celery.result import AsyncResult
from django.contrib.auth import get_user_model, login, logout
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

import tasktrail

from . import scenarios

VISITOR_PREFIX = "visitor-"

COOKIE = "demo_tasks"
# Enough to show a browser's recent work; 20 ids keep the cookie near 1 kB (limit 4 kB).
REMEMBERED = 20
# As long as the tasks' signed links last.
COOKIE_AGE = 24 * 3600


def _started(request: HttpRequest) -> list[dict[str, str]]:
    try:
        tasks = json.loads(request.get_signed_cookie(COOKIE, "[]", max_age=COOKIE_AGE))
    except (signing.BadSignature, ValueError):
        return []
    return [t for t in tasks if isinstance(t, dict) and {"id", "scenario"} <= t.keys()]


def _check_started(request: HttpRequest, task_id: str) -> None:
    if not any(task["id"] == task_id for task in _started(request)):
        raise Http404("no such task in this browser")


def _visitor(user: Any) -> bool:
    """A visitor's own demo account (not the operator, nor any other staff)."""
    return bool(user.is_authenticated and not user.is_staff)


def _log_in_visitor(request: HttpRequest) -> None:
    """A demo user per visitor: the owner of the tasks they start (no password)."""
    if not request.user.is_authenticated:
        user = get_user_model().objects.create_user(f"{VISITOR_PREFIX}{secrets.token_hex(6)}")
        login(request, user)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    tasks = [{**task, "link": tasktrail.status_url(task["id"])} for task in _started(request)[::-1]]
    context = {
        "scenarios": scenarios.SCENARIOS,
        "tasks": tasks,
        "visitor": _visitor(request.user),
    }
    return render(request, "demo/index.html", context)


@require_POST
def start(request: HttpRequest, scenario: str) -> HttpResponse:
    if scenario not in scenarios.SCENARIOS:
        raise Http404("no such scenario")
    # Before sending: tasktrail's OwnerMiddleware records the user sending it.
    _log_in_visitor(request)
    result = scenarios.start(scenario)
    started = [*_started(request), {"id": result.id, "scenario": scenario}]
    response = redirect("demo:index")
    response.set_signed_cookie(
        COOKIE,
        json.dumps(started[-REMEMBERED:]),
        max_age=COOKIE_AGE,
        httponly=True,
        samesite="Lax",
    )
    return response


@require_POST
def operator(request: HttpRequest) -> HttpResponse:
    """To the operator's login: a visitor's account is logged out first, so the admin's
    login does not say "You are authenticated as visitor-…, but are not authorized"."""
    if _visitor(request.user):
        logout(request)
    dashboard = reverse("tasktrail:dashboard")
    return redirect(f"{reverse('admin:login')}?{urlencode({'next': dashboard})}")


@require_POST
def revoke(request: HttpRequest, task_id: str) -> HttpResponse:
    _check_started(request, task_id)
    # terminate=True stops a task that is already running (the prefork pool
    # kills the process running it); without it, revoke only discards a task
    # that has not started yet.
    AsyncResult(task_id).revoke(terminate=True)
    return redirect("demo:index")
