"""The JSON status, the status page a signed link opens, and the widget's script."""

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

SCRIPT = Path(__file__).resolve().parent.parent / "static" / "tasktrail" / "tasktrail.js"
#: Links carry their token in the URL: keep it out of other sites' Referer headers.
PRIVATE = {**responses.NO_STORE, "Referrer-Policy": "no-referrer"}


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
        raise Http404("not found") from None
    response = render(request, "tasktrail/status_page.html", {"task": record, "token": token})
    for header, value in PRIVATE.items():
        response[header] = value
    return response


@functools.cache
def script_source() -> tuple[bytes, str]:
    """The widget's script and its version (a hash, for the URL that caches it)."""
    source = SCRIPT.read_bytes()
    return source, hashlib.sha256(source).hexdigest()[:12]


@require_GET
def script(request: HttpRequest) -> HttpResponse:
    source, version = script_source()
    # The URL carries the version, so a browser may keep this for a year.
    caching = "public, max-age=31536000, immutable" if request.GET.get("v") == version else ""
    response = HttpResponse(source, content_type="text/javascript; charset=utf-8")
    if caching:
        response["Cache-Control"] = caching
    return response
