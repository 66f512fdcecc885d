# The README's two commands: `make run` (the service) and `make test` (the whole suite, which also
# builds the docs with `mkdocs build --strict`: tests/test_docs.py). `make docs` serves the docs site.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/agentbot
TEST_BROKER_URL ?= redis://127.0.0.1:6379/12

.PHONY: run test lint install bench docs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	AGENTBOT_ALLOW_PRIVATE_URLS=$${AGENTBOT_ALLOW_PRIVATE_URLS:-1} $(PY) manage.py serve

# The house rules, before the suite: lint and format (ruff, configured in pyproject.toml) and the
# apps' layers (import-linter's contracts in pyproject.toml; docs/ARCHITECTURE.md explains them),
# and no import circle in any package, function-local imports included (scripts/import_cycles.py).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) scripts/import_cycles.py

test: install lint
	@bash scripts/services.sh
	@bash scripts/browser.sh
	@bash scripts/node_deps.sh
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
		$(PY) -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/): built, then served with live reload on DOCS_ADDR.
# The REST API reference is generated from the live OpenAPI schema on each build.
DOCS_ADDR ?= 127.0.0.1:8001
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr $(DOCS_ADDR)

# The delivery engine's benchmark (not part of `make test`): BENCH_ARGS=--quick for a short pass.
bench: install
	@bash scripts/services.sh
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data staticfiles site
