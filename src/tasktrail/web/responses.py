"""Responses shared by the views: JSON that any record value survives, and the one 404."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import get_resolver

NOT_FOUND = {"error": "not found"}
NO_STORE = {"Cache-Control": "no-store"}
#: Links carry their token in the URL: keep it out of other sites' Referer headers.
PRIVATE = {**NO_STORE, "Referrer-Policy": "no-referrer"}


class Encoder(DjangoJSONEncoder):
    """Dates, decimals and UUIDs as strings; what else a result may hold, as its text."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=Encoder, headers=NO_STORE)


def not_found() -> JsonResponse:
    """The answer for an unknown id and for a task this viewer may not see: identical."""
    return json(NOT_FOUND, status=404)


def page_not_found(request: HttpRequest) -> HttpResponse:
    """The project's own 404 page (its ``handler404``), with the headers the status
    page has: a dead link must not leak its token as a Referer, nor be cached."""
    resolver = get_resolver(getattr(request, "urlconf", None))
    # Django calls it as handler404(request, exception); django-stubs type one argument.
    handler: Any = resolver.resolve_error_handler(404)
    response: HttpResponse = handler(request, exception=Http404("not found"))
    for header, value in PRIVATE.items():
        response[header] = value
    return response
