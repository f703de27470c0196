"""The Prometheus endpoint: ``GET <tasktrail>/metrics``, never open by default.

Who may read it is :func:`tasktrail.access.may_scrape` (staff, ``METRICS_PERMISSION``,
or the ``METRICS_TOKEN`` bearer token); others get 401 (no or wrong credentials) or 403
(logged in without the right). What it says is :mod:`tasktrail.metrics`.
"""

from __future__ import annotations

from celery import current_app
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import access
from .views import viewer


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed = access.may_scrape(viewer(request), request.headers.get("Authorization", ""))
    if allowed is access.Scrape.UNAUTHENTICATED:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="tasktrail metrics"'
        return response
    if allowed is access.Scrape.FORBIDDEN:
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    try:
        # An optional dependency (the ``metrics`` extra): only this endpoint needs it.
        from .. import metrics as exported
    except ImportError as missing:
        text = (
            f"the metrics endpoint needs prometheus_client (django-tasktrail[metrics]): {missing}\n"
        )
        return HttpResponse(text, status=501, content_type="text/plain")
    body = exported.exposition(current_app, timezone.now())
    response = HttpResponse(body, content_type=exported.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
