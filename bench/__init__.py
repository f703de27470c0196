"""tasktrail's throughput benchmark: ``python -m bench`` (see bench/README.md).

Every scenario runs the same no-op task through a real Celery worker on the same
broker; only the result store differs, so the ratios to ``celery-ignore`` show
what recording status costs.
"""
