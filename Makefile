# Two commands for a fresh clone: `make demo` and `make test`.
# Both create .venv with Python >= 3.12 and install tasktrail with its dev tools.

VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# pyenv reads .python-version; otherwise the first Python >= 3.12 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: demo test test-rabbitmq lint bench install docs compat compat-ci

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "tasktrail needs Python >= 3.12 on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e . --group dev
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) example/manage.py demo $(ARGS)

# The suite runs in three passes: everything but the worker tests on the embedded SQLite
# default; every test that touches the database (pytest-django's django_db marker) and
# the real-worker tests on PostgreSQL + Redis; the real-worker tests again on PostgreSQL
# + RabbitMQ (a vhost of the run's own, tests/brokers.py). A store test added anywhere
# runs on both databases without being listed here.
PG_TESTS := (django_db or integration or postgres) and not browser and not acceptance

test: install
	$(VENV)/bin/pytest -m "not integration" $(ARGS)
	TT_DB=postgres $(VENV)/bin/pytest -m "$(PG_TESTS)" $(ARGS)
	$(MAKE) --no-print-directory test-rabbitmq

# The third pass alone.
test-rabbitmq: install
	TT_DB=postgres TT_BROKER=rabbitmq $(VENV)/bin/pytest -m integration $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) example/manage.py makemigrations --check --dry-run tasktrail

# Celery's own integration suite (t/integration/test_tasks.py and test_canvas.py from the
# sdist of the installed Celery, fetched once into build/compat/) with tasktrail as the
# result backend on SQLite and PostgreSQL, beside django-celery-results and Celery's Redis
# backend; fails when tasktrail fails what another passes on the same broker. ARGS picks:
# ARGS="--backends tasktrail-sqlite --brokers redis,rabbitmq --jobs 2" (tests/compat/run.py).
compat: install
	$(PY) -m tests.compat.run $(ARGS)

# CI's run (.ci/run): tasktrail on SQLite on Redis and on RabbitMQ at once, compared with
# the references saved in tests/compat/ for each broker, without the 5 slowest tests.
compat-ci: install
	$(PY) -m tests.compat.run --ci $(ARGS)

bench: install
	$(PY) -m bench $(ARGS)

# The documentation site (docs/, mkdocs.yml) into build/site; warnings and broken links fail it.
docs: install
	$(VENV)/bin/mkdocs build --strict
