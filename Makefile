.DEFAULT_GOAL := help
.PHONY: help requirements demo test test-unit test-integration test-faults test-py312 quality docs coverage-report \
        compile-requirements upgrade clean format load-test

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The first Python 3.12 that actually runs (a version manager's shim may exist without the interpreter).
PY312 ?= $(shell for p in $$(ls -1 $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) $$(command -v python3.12); \
	do "$$p" -c "" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV312 ?= .venv312
LINT_PATHS := badges_bridge tests demo setup.py $(wildcard benchmarks)

help: ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## .*$$' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-22s %s\n", $$1, $$2}'

$(STAMP): requirements/*.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/doc.txt -r requirements/quality.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

requirements: $(STAMP) ## create the virtualenv and install every requirement

demo: $(STAMP) ## run the demo: SQLite, in-process Celery, the bundled fake Credly and Accredible servers
	$(BIN)/python demo/run.py

test: test-unit test-integration test-faults coverage-report test-py312 quality docs ## run the whole test suite and checks

test-unit: $(STAMP) ## unit and end-to-end tests on SQLite with eager Celery
	$(BIN)/python -m coverage erase
	$(BIN)/python -m pytest --cov=badges_bridge --cov-report= -q

test-integration: $(STAMP) ## integration tests on MariaDB with a real Celery worker on Redis
	BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker \
		$(BIN)/python -m pytest tests/integration -m "integration and not faults" --cov=badges_bridge --cov-append \
		--cov-report= -q

test-faults: $(STAMP) ## fault tests: killed workers, racing workers, a restarted Redis, the exactly-once defects
	BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker \
		$(BIN)/python -m pytest tests/integration/faults -m faults --cov=badges_bridge --cov-append --cov-report= -q \
		--durations=5

load-test: $(STAMP) ## 10,000 learners through MariaDB, Redis and two worker processes (LOAD_ARGS="--learners 1000")
	$(BIN)/python benchmarks/load.py $(LOAD_ARGS)

coverage-report: $(STAMP) ## print line coverage of badges_bridge (fails under 90%)
	$(BIN)/python -m coverage report --fail-under=90

test-py312: ## unit tests on Python 3.12 with openedx-events 11 (skipped when python3.12 is missing)
	@if [ -z "$(PY312)" ]; then echo "python3.12 not found: skipping the Python 3.12 run"; exit 0; fi; \
	set -e; test -x $(VENV312)/bin/python || $(PY312) -m venv $(VENV312); \
	$(VENV312)/bin/python -m pip install -q --upgrade pip; \
	$(VENV312)/bin/python -m pip install -q -r requirements/test.txt "openedx-events>=11"; \
	$(VENV312)/bin/python -m pip install -q --no-deps -e .; \
	$(VENV312)/bin/python -m pytest -q

quality: $(STAMP) ## lint, formatting and migration checks
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations badges_bridge --check --dry-run

docs: $(STAMP) ## build the documentation with warnings as errors
	$(BIN)/doc8 --max-line-length 120 --ignore-path docs/_build docs README.rst CHANGELOG.rst
	$(BIN)/python -m sphinx -q -W -b html docs docs/_build/html

format: $(STAMP) ## format the code
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

compile-requirements: ## compile requirements/*.in to pinned *.txt
	$(BIN)/python -m pip install -q -r requirements/pip-tools.txt
	for f in base test quality doc pip-tools; do \
		$(BIN)/pip-compile -q --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(PIP_COMPILE_OPTS) -o requirements/$$f.txt requirements/$$f.in; done

upgrade: PIP_COMPILE_OPTS = --upgrade
upgrade: compile-requirements ## upgrade every pinned requirement

clean: ## remove build and test artefacts
	rm -rf build dist *.egg-info .coverage coverage.xml htmlcov docs/_build demo/*.sqlite3
