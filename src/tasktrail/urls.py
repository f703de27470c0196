"""tasktrail's URLs: ``path("tasktrail/", include("tasktrail.urls"))``."""

from urllib.parse import unquote

from django.urls import path, register_converter

from .web import dashboard, groups, livelist, metrics, sse, system, views


class TaskIdConverter:
    """A task id as one path segment, whatever it holds.

    Celery lets callers choose ids, so one may hold ``/`` (which would split the
    segment) or be ``.``/``..`` (which browsers and proxies resolve away). Those are
    percent-encoded, and so is ``%`` itself, *before* the URL is percent-encoded as
    usual: servers decode a path once before routing, so ``a/b`` travels as
    ``a%252Fb``, arrives as ``a%2Fb`` and is decoded here. Ids without ``/``, ``%`` or
    only dots keep the URLs they always had; ``a/b`` typed by hand as ``a%2Fb`` is
    still split by the server, as for any Django URL.
    """

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        value = str(value)
        if value.strip(".") == "":
            return value.replace(".", "%2E")
        return value.replace("%", "%25").replace("/", "%2F")


register_converter(TaskIdConverter, "tasktrail_id")

app_name = "tasktrail"
urlpatterns = [
    path("tasktrail.js", views.script, name="script"),
    path("assets/<str:name>", views.asset, name="asset"),
    # The operators' dashboard.
    path("", dashboard.dashboard, name="dashboard"),
    path("tasks/", dashboard.task_list, name="task_list"),
    path("live/", dashboard.live, name="live"),
    path("live/list/", livelist.list_events, name="list_events"),
    path("workers/", system.workers, name="workers"),
    path("queues/", system.queues, name="queues"),
    # Prometheus' scrape: staff, METRICS_PERMISSION or the METRICS_TOKEN bearer token.
    path("metrics", metrics.metrics, name="metrics"),
    path("tasks/<tasktrail_id:task_id>/detail/", dashboard.task_detail, name="task_detail"),
    path("tasks/<tasktrail_id:task_id>/retry/", dashboard.retry, name="retry"),
    path("tasks/<tasktrail_id:task_id>/revoke/", dashboard.revoke, name="revoke"),
    # One task, for its owner or the holder of a signed link.
    path("tasks/<tasktrail_id:task_id>/", views.page, name="page"),
    path("tasks/<tasktrail_id:task_id>/status/", views.status, name="status"),
    path("tasks/<tasktrail_id:task_id>/events/", sse.events, name="events"),
    # Groups, chords (by their header's group id) and chains (by any step's id).
    path("groups/<tasktrail_id:group_id>/detail/", groups.group_detail, name="group_detail"),
    path("groups/<tasktrail_id:group_id>/status/", groups.group_status, name="group_status"),
    path("groups/<tasktrail_id:group_id>/events/", groups.group_events, name="group_events"),
    path("chains/<tasktrail_id:task_id>/detail/", groups.chain_detail, name="chain_detail"),
    path("chains/<tasktrail_id:task_id>/status/", groups.chain_status, name="chain_status"),
    path("chains/<tasktrail_id:task_id>/events/", groups.chain_events, name="chain_events"),
]
