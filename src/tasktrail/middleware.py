"""Middleware recording the logged-in user as the owner of the tasks a request sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest

from .owner import owned_by


class OwnerMiddleware:
    """Place after ``AuthenticationMiddleware``.

    The user is resolved only when a task is sent, so requests that send none pay
    nothing (no session lookup).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        with owned_by(lambda: getattr(request, "user", None)):
            return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        with owned_by(lambda: getattr(request, "user", None)):
            return await self.get_response(request)
