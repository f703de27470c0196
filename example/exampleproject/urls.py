from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("demo.urls")),
    # tasktrail's dashboard is /tasktrail/, for staff: log in at /admin/login/.
    path("tasktrail/", include("tasktrail.urls")),
    path("admin/", admin.site.urls),
]
