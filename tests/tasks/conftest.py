"""The real-worker fixtures of tests/integration, for django.tasks' tests."""

from tests.integration.conftest import (  # noqa: F401  (fixtures)
    _own_spool,
    django_db_setup,
    services,
    start_worker,
    worker,
)
