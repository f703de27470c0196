"""tasktrail's URLs: ``path("tasktrail/", include("tasktrail.urls"))``."""

from django.urls import path

from .web import sse, views

app_name = "tasktrail"
urlpatterns = [
    path("tasktrail.js", views.script, name="script"),
    path("tasks/<str:task_id>/", views.page, name="page"),
    path("tasks/<str:task_id>/status/", views.status, name="status"),
    path("tasks/<str:task_id>/events/", sse.events, name="events"),
]
