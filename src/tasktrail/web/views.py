"""The JSON status, the status page a signed link opens, and the scripts and styles."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import access
from ..exceptions import TaskNotFound
from . import responses

STATIC = Path(__file__).resolve().parent.parent / "static" / "tasktrail"
#: The files served from ``STATIC`` (no staticfiles app needed), with their types.
ASSETS = {
    "tasktrail.js": "text/javascript; charset=utf-8",
    "tasktrail.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def viewer(request: HttpRequest) -> Any:
    """The logged-in user, if the project authenticates users at all."""
    return getattr(request, "user", None)


@require_GET
def status(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        record, allowed = access.lookup(task_id, viewer(request), request.GET.get("token"))
    except TaskNotFound:
        return responses.not_found()
    return responses.json(access.snapshot(record, allowed))


@require_GET
def page(request: HttpRequest, task_id: str) -> HttpResponse:
    token = request.GET.get("token")
    try:
        record, _ = access.lookup(task_id, viewer(request), token)
    except TaskNotFound:
        return responses.page_not_found(request)
    response = render(request, "tasktrail/status_page.html", {"task": record, "token": token})
    for header, value in responses.PRIVATE.items():
        response[header] = value
    return response


@functools.cache
def asset_source(name: str) -> tuple[bytes, str]:
    """One of :data:`ASSETS` and its version (a hash, for the URL that caches it)."""
    source = (STATIC / name).read_bytes()
    return source, hashlib.sha256(source).hexdigest()[:12]


def _serve(request: HttpRequest, name: str) -> HttpResponse:
    source, version = asset_source(name)
    response = HttpResponse(source, content_type=ASSETS[name])
    # The URL carries the version, so a browser may keep this for a year.
    if request.GET.get("v") == version:
        response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@require_GET
def script(request: HttpRequest) -> HttpResponse:
    return _serve(request, "tasktrail.js")


@require_GET
def asset(request: HttpRequest, name: str) -> HttpResponse:
    if name not in ASSETS:
        raise Http404("not found")
    return _serve(request, name)
