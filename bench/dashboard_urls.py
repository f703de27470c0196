"""The URLconf of ``bench.dashboard``: tasktrail's pages and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("tasktrail/", include("tasktrail.urls")),
    path("admin/", admin.site.urls),
]
