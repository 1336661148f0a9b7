.DEFAULT_GOAL := help
.PHONY: help requirements demo test test-unit test-integration test-faults test-matrix coverage-report quality \
        pii_check docs dist dist-check compile-requirements upgrade clean format load-test provider-limit-test \
        preview-benchmark

# The first interpreter of a Python version that actually runs (a version manager's shim may exist without it).
find_python = $(shell for p in $$(ls -1 $$HOME/.pyenv/versions/$(1)*/bin/python$(1) 2>/dev/null) \
	$$(command -v python$(1)); do "$$p" -c "" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
ifeq ($(origin PY311),undefined)
PY311 := $(call find_python,3.11)
endif
ifeq ($(origin PY312),undefined)
PY312 := $(call find_python,3.12)
endif
PYTHON ?= $(or $(PY311),$(PY312),$(shell command -v python3))

# The main virtualenv: the demo, the unit and integration tests under coverage, lint, docs and packaging.
VENV ?= .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
STAMP := $(VENV)/.installed
INTEGRATION_STAMP := $(VENV)/.installed-integration
# openedx-events 11 needs Python 3.12; the pinned files only pin it for Python 3.11.
EVENTS_312 := "openedx-events>=11; python_version >= '3.12'"

# The other (Python, Django) pairs of the unit suite, each in .venvs/<pair> with only the test requirements.
MATRIX := py311-django42 py312-django52 py312-django42
DJANGO_django42 := Django>=4.2,<4.3
DJANGO_django52 := Django>=5.2,<5.3
pair_python = $(PY$(patsubst py%,%,$(word 1,$(subst -, ,$(1)))))
pair_django = $(DJANGO_$(word 2,$(subst -, ,$(1))))

LINT_PATHS := badges_bridge tests demo tools setup.py $(wildcard benchmarks)
# Prints the versions a test run uses (read by tools/run_checks.py for its summary).
VERSIONS := import platform, django, importlib.metadata as m; print("badges_bridge versions: Python %s, Django %s, \
	openedx-events %s" % (platform.python_version(), django.__version__, m.version("openedx-events")))

help: ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## .*$$' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-22s %s\n", $$1, $$2}'

$(BASE_STAMP): requirements/base.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/base.txt $(EVENTS_312)
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(STAMP): $(BASE_STAMP) requirements/test.txt requirements/quality.txt requirements/doc.txt
	$(BIN)/python -m pip install -q -r requirements/doc.txt -r requirements/quality.txt $(EVENTS_312)
	touch $@

requirements: $(STAMP) ## create the virtualenv with everything but the integration extras (no system package needed)

demo: $(BASE_STAMP) ## run the demo: SQLite, in-process Celery, the bundled fake Credly and Accredible servers
	$(BIN)/python demo/run.py

test: ## run every test and check, from test-unit to docs, then print a one-line summary
	@MAKE="$(MAKE)" $(PYTHON) tools/run_checks.py $(MATRIX)

test-unit: $(STAMP) ## unit and end-to-end tests on SQLite with eager Celery, under coverage (main virtualenv)
	@$(BIN)/python -c '$(VERSIONS)'
	$(BIN)/python -m coverage erase
	$(BIN)/python -m pytest --cov=badges_bridge --cov-report= -q

$(INTEGRATION_STAMP): $(STAMP) requirements/integration.txt
	@$(BIN)/python -c "import MySQLdb" 2>/dev/null || [ -n "$$MYSQLCLIENT_CFLAGS" ] \
		|| pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists mariadb 2>/dev/null || { \
		echo "make test-integration: building mysqlclient needs pkg-config and the MariaDB client library headers,"; \
		echo "and pkg-config finds neither 'mysqlclient' nor 'mariadb'. Install them (Debian or Ubuntu, as root):"; \
		echo ""; \
		echo "    apt-get install -y pkg-config libmariadb-dev"; \
		echo ""; \
		echo "then run the target again (.ci/run does this before 'make test')."; \
		exit 2; }
	$(BIN)/python -m pip install -q -r requirements/integration.txt
	touch $@

test-integration: $(INTEGRATION_STAMP) ## integration tests on MariaDB with a real Celery worker on Redis
	@$(BIN)/python -c '$(VERSIONS)'
	BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker \
		$(BIN)/python -m pytest tests/integration -m "integration and not faults" --cov=badges_bridge --cov-append \
		--cov-report= -q

test-faults: $(INTEGRATION_STAMP) ## fault tests: killed workers, racing workers, a restarted Redis, the exactly-once defects
	BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker \
		$(BIN)/python -m pytest tests/integration/faults -m faults --cov=badges_bridge --cov-append --cov-report= -q \
		--durations=5

load-test: $(INTEGRATION_STAMP) ## 10,000 learners through MariaDB, Redis and two worker processes (LOAD_ARGS="--learners 1000")
	$(BIN)/python benchmarks/load.py $(LOAD_ARGS)

provider-limit-test: $(INTEGRATION_STAMP) ## a backfill against each fake provider's (scaled) rate limit (LIMIT_ARGS="--scenario credly")
	$(BIN)/python benchmarks/provider_limit.py $(LIMIT_ARGS)

preview-benchmark: $(BASE_STAMP) ## time and memory of a badge's preview at 10,000 and 100,000 learners (PREVIEW_ARGS="--learners 1000")
	$(BIN)/python benchmarks/preview.py $(PREVIEW_ARGS)

coverage-report: $(STAMP) ## print line and branch coverage of badges_bridge (fails under 90%)
	$(BIN)/python -m coverage report --fail-under=90

.venvs/%/.installed: requirements/test.txt setup.py
	test -x $(@D)/bin/python || $(call pair_python,$*) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --upgrade pip
	$(@D)/bin/python -m pip install -q -r requirements/test.txt "$(call pair_django,$*)" $(EVENTS_312)
	$(@D)/bin/python -m pip install -q --no-deps -e .
	touch $@

test-matrix: $(addprefix test-,$(MATRIX)) ## the unit tests (browser tests aside) on the other pairs: py311-django42, py312-django{52,42}

$(addprefix test-,$(MATRIX)): test-%: ## (one pair, e.g. test-py312-django42; skipped when its Python is missing)
	@if [ -z "$(call pair_python,$*)" ]; then echo "$*: no working Python found, skipping"; exit 0; fi; \
	set -e; $(MAKE) --no-print-directory .venvs/$*/.installed; \
	.venvs/$*/bin/python -c '$(VERSIONS)'; \
	export DJANGO_SETTINGS_MODULE=tests.settings; \
	.venvs/$*/bin/python -m django check; \
	.venvs/$*/bin/python -m django makemigrations badges_bridge --check --dry-run; \
	.venvs/$*/bin/python -m pytest -q --ignore=tests/browser

quality: $(STAMP) pii_check ## lint, formatting, migration and PII annotation checks
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations badges_bridge --check --dry-run

dist: $(STAMP) ## build the sdist, then the wheel from it, into dist/
	rm -rf dist build
	$(BIN)/python -m build --quiet --outdir dist .

dist-check: dist ## build, then check the distributions: twine's metadata check and their contents
	$(BIN)/twine check --strict dist/*
	$(BIN)/python tools/check_dist.py dist
pii_check: $(STAMP) ## every model carries a valid Open edX PII annotation (code-annotations, .pii_annotations.yml)
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/code_annotations django_find_annotations \
		--config_file .pii_annotations.yml --lint --report --coverage

docs: $(STAMP) ## build the documentation with warnings as errors
	$(BIN)/doc8 --max-line-length 120 --ignore-path docs/_build docs README.rst CHANGELOG.rst
	$(BIN)/python -m sphinx -q -W -b html docs docs/_build/html

format: $(STAMP) ## format the code
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# test.txt is compiled with Django, then the Django pin is removed so that each test environment chooses it.
compile-requirements: ## compile requirements/*.in to pinned *.txt
	$(BIN)/python -m pip install -q -r requirements/pip-tools.txt
	cd requirements && for f in base test quality doc integration pip-tools; do \
		../$(BIN)/pip-compile -q --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(PIP_COMPILE_OPTS) \
			-o $$f.txt $$f.in || exit 1; \
		if [ $$f = test ]; then sed -i '/^django==/,/^[^ ]/{/^django==/d;/^    /d}' test.txt; fi; done

upgrade: PIP_COMPILE_OPTS = --upgrade
upgrade: compile-requirements ## upgrade every pinned requirement

clean: ## remove build and test artefacts
	rm -rf build dist *.egg-info .coverage coverage.xml htmlcov docs/_build demo/*.sqlite3
