# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test test-exact test-long docker-check lint bench-quick fuzz clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel >/dev/null
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# API + pages + one embedded worker on http://127.0.0.1:8000, SQLite under ./synflow-data (migrated on start).
run: install
	$(VENV)/bin/synflow db upgrade
	$(VENV)/bin/synflow serve --workers 1

demo: install
	$(VENV)/bin/synflow hypergrid --steps 2000

# ruff, the import-layer contracts (pyproject [tool.importlinter]), mypy on the packages, then the suite.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 -q -m "not exact and not long"

# The long exactness trainings (tests/synflow/test_exactness.py): .ci/run runs them after `make test`.
test-exact: install
	$(PY) -m pytest -n 2 -q -m exact

# End-to-end checks of a minute or more (marker `long`): .ci/run runs them after `make test`.
test-long: install
	$(PY) -m pytest -n 2 -q -m long

# Build the image and run the compose stack for real (PostgreSQL, API, CPU worker): the README's run
# through the API, its molecules and SDF export, a restart that keeps the data. Root; ~10 minutes.
docker-check:
	bash scripts/docker_check.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-quick: install
	$(PY) benchmarks/hypergrid.py --quick

# schemathesis against a real `synflow serve`, SQLite then a throwaway PostgreSQL: exits 1 on any 5xx.
fuzz: install
	$(PY) benchmarks/fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
