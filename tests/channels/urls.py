"""The test site's URLs and a page with widgets on the WebSocket transport (for Chromium)."""

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

PAGE = """{% load tasktrail %}<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>tasktrail WebSocket widget</title></head><body>
{% tasktrail_status task_id websocket=True %}
</body></html>"""


def widget(request: HttpRequest, task_id: str) -> HttpResponse:
    page = engines["django"].from_string(PAGE)
    return HttpResponse(page.render({"task_id": task_id}, request))


urlpatterns = [
    path("ws-widget/<str:task_id>/", widget),
    path("", include("tests.testapp.urls")),
]
