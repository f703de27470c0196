"""The workers and queues pages: where the system's load is, for operators.

Open to whoever may see the dashboard (404 otherwise, as every dashboard page) and who
sees workers' hostnames (:func:`tasktrail.access.disclosure`); the data comes from
:mod:`tasktrail.system`. A broker that is down or slow leaves the queues page with the
store's half and a note, after at most ``TASKTRAIL["BROKER_TIMEOUT"]``.
"""

from __future__ import annotations

from celery import current_app
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import access, system
from .dashboard import _operator, _page


def _sees_workers(request: HttpRequest) -> None:
    # Hostnames and queues are the deployment's: for those who see workers on tasks.
    if not access.disclosure(_operator(request)).worker:
        raise Http404("not found")


@require_GET
def workers(request: HttpRequest) -> HttpResponse:
    _sees_workers(request)
    now = timezone.now()
    fleet = system.fleet(now)
    context = {"now": now, "fleet": fleet, "window": system.WINDOW}
    return _page(request, "tasktrail/dashboard/workers.html", context)


@require_GET
def queues(request: HttpRequest) -> HttpResponse:
    _sees_workers(request)
    now = timezone.now()
    context = {"now": now, "loads": system.queue_loads(current_app, now), "window": system.WINDOW}
    return _page(request, "tasktrail/dashboard/queues.html", context)
