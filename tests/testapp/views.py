"""Views as a Celery user writes them, unchanged by tasktrail."""

from celery.result import AsyncResult
from django.http import HttpRequest, JsonResponse

from .tasks import add


def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    return JsonResponse({"task_id": task_id, "status": AsyncResult(task_id).status})


def start_add(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"task_id": add.delay(1, 2).id})
