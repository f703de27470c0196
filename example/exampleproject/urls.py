from django.urls import include, path

urlpatterns = [
    path("", include("demo.urls")),
    path("tasktrail/", include("tasktrail.urls")),
]
