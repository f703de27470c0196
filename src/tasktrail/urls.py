"""tasktrail's URLs: ``path("tasktrail/", include("tasktrail.urls"))``."""

from django.urls import path

from .web import dashboard, sse, views

app_name = "tasktrail"
urlpatterns = [
    path("tasktrail.js", views.script, name="script"),
    path("assets/<str:name>", views.asset, name="asset"),
    # The operators' dashboard.
    path("", dashboard.dashboard, name="dashboard"),
    path("tasks/", dashboard.task_list, name="task_list"),
    path("live/", dashboard.live, name="live"),
    path("tasks/<str:task_id>/detail/", dashboard.task_detail, name="task_detail"),
    path("tasks/<str:task_id>/retry/", dashboard.retry, name="retry"),
    path("tasks/<str:task_id>/revoke/", dashboard.revoke, name="revoke"),
    # One task, for its owner or the holder of a signed link.
    path("tasks/<str:task_id>/", views.page, name="page"),
    path("tasks/<str:task_id>/status/", views.status, name="status"),
    path("tasks/<str:task_id>/events/", sse.events, name="events"),
]
