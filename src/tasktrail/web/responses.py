"""Responses shared by the views: JSON that any record value survives, and the one 404."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse

NOT_FOUND = {"error": "not found"}
NO_STORE = {"Cache-Control": "no-store"}


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
