from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("", views.index, name="index"),
    path("start/<str:scenario>/", views.start, name="start"),
    path("operator/", views.operator, name="operator"),
    path("tasks/<str:task_id>/revoke/", views.revoke, name="revoke"),
]
