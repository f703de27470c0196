"""Whom a stream counts against, read from a real request through Django's own session
and authentication middleware."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from tasktrail.web import limits, streams
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def _request(session_key: str | None = None, **query: str) -> HttpRequest:
    from django.contrib.sessions.middleware import SessionMiddleware

    request = RequestFactory().get("/tasktrail/tasks/t/events/", query)
    if session_key is not None:
        request.COOKIES["sessionid"] = session_key

    def respond(_: HttpRequest) -> HttpResponse:
        return HttpResponse()

    SessionMiddleware(respond).process_request(request)
    AuthenticationMiddleware(respond).process_request(request)
    return request


def test_a_made_up_session_cookie_counts_as_no_session() -> None:
    # Else a client could make up a cookie per stream and be a new viewer each time.
    request = _request("madeupsessionkey0123456789abcdef", token="tok")
    assert streams.viewer_key(request) == limits.viewer_key(None, None, "tok", "127.0.0.1")


def test_a_known_session_then_a_user_is_the_viewer() -> None:
    store = SessionStore()
    store["seen"] = True
    store.create()
    known: Any = store.session_key
    assert streams.viewer_key(_request(known, token="tok")) == limits.viewer_key(
        None, known, "tok", "127.0.0.1"
    )
    user = make_user("streamer")
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.save()
    assert streams.viewer_key(_request(known)) == f"user:{user.pk}"
