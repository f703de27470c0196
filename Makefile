# Two commands for a fresh clone: `make demo` and `make test`.
# Both create .venv with Python >= 3.12 and install tasktrail (editable) with its dev tools,
# at the versions uv.lock pins: a fresh clone tests what CI tested.

VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# pyenv reads .python-version; otherwise the first Python >= 3.12 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: demo test test-rabbitmq lint bench install docs compat compat-ci lock matrix matrix-ci build

# uv sync --frozen installs exactly what uv.lock pins (every extra, the dev group, tasktrail
# editable) and fails rather than re-resolve; --inexact leaves pip and uv, which the lock
# does not name, in the venv. After changing dependencies in pyproject.toml: `make lock`.
$(VENV)/.installed: pyproject.toml uv.lock
	@test -n "$(PYTHON)" || { echo "tasktrail needs Python >= 3.12 on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --inexact --all-extras \
		--python $(PY)
	touch $@

install: $(VENV)/.installed

# Re-resolve uv.lock from pyproject.toml (after adding or changing a dependency); commit both.
lock:
	@test -x $(UV) || { echo "run make install first"; exit 1; }
	$(UV) lock

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

# The lock check needs no network: a uv.lock that matches pyproject.toml is read from disk.
lint: install
	@$(UV) lock --check --offline --quiet 2>/dev/null || { \
		echo "uv.lock does not match pyproject.toml: run make lock and commit uv.lock"; exit 1; }
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

# The version matrix (noxfile.py): Python 3.12, 3.13 x Django 5.2, 6.0, 6.1 x Celery 5.5, 5.6,
# 5.7, each pair installed from the wheel into its own venv (.nox/), plus the lower bounds
# exactly (floor); unit tests on SQLite, the real-worker module on PostgreSQL + Redis. One
# session after another: about 2 minutes each, 40 in all. ARGS="-s NAME" picks sessions
# (.venv/bin/nox -l lists them). matrix-ci is the slice CI runs: the oldest and newest corner.
matrix: install
	$(VENV)/bin/nox $(ARGS)

matrix-ci: install
	$(VENV)/bin/nox -s $(shell $(PY) -c 'import noxfile; print(" ".join(map(repr, noxfile.CI_SESSIONS)))')

# The sdist and wheel into dist/, checked as the package index will check them.
build: install
	rm -rf dist
	$(UV) build
	$(VENV)/bin/twine check --strict dist/*

# CI's run (.ci/run): tasktrail on SQLite on Redis and on RabbitMQ at once, compared with
# the references saved in tests/compat/ for each broker, without the 5 slowest tests.
compat-ci: install
	$(PY) -m tests.compat.run --ci $(ARGS)

bench: install
	$(PY) -m bench $(ARGS)

# The documentation site (docs/, mkdocs.yml) into build/site; warnings and broken links fail it.
docs: install
	$(VENV)/bin/mkdocs build --strict
