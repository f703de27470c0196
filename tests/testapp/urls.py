from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("status/<str:task_id>/", views.task_status),
    path("start/", views.start_add),
    path("tasktrail/", include("tasktrail.urls")),
    path("admin/", admin.site.urls),
]
