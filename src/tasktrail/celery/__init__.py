"""Celery glue: signal subscribers, the result backend and worker-side hooks."""
