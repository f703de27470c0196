from django.urls import path

from . import views

urlpatterns = [
    path("status/<str:task_id>/", views.task_status),
    path("start/", views.start_add),
]
