# One-command setup: every target creates or updates the local virtualenv first, from the
# lock file (uv.lock), so a fresh clone installs exactly the versions that were tested.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
SYNC := sync --locked --extra fast --extra metrics --extra otel
# The uv release that installs the environment is the one the lock pins (dev group).
UV_VERSION := $(shell awk '/^name = "uv"$$/ {getline; gsub(/[^0-9.]/, "", $$0); print; exit}' uv.lock)
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install lock test check lint typecheck contracts unit integration test-slow test-all \
	lowest latest servers demo bench bench-smoke clean test-faults docs

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) $(SYNC) --python $(BIN)/python
	rm -f $(DOCS_STAMP)
	touch $(STAMP)

# The docs group on top of the same environment (a superset: nothing the tests use is removed).
$(DOCS_STAMP): $(STAMP)
	$(UV) $(SYNC) --group docs --python $(BIN)/python
	touch $(DOCS_STAMP)

install: $(STAMP)

## make lock: re-resolve every dependency to the newest allowed release and rewrite uv.lock
lock: $(UV)
	$(UV) lock --upgrade

## make test: install from the lock, then lint, type-check, import contracts and the whole suite
## (with the docs group: the suite builds the site and opens it in headless Chromium)
test: $(DOCS_STAMP) check
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

check: lint typecheck contracts

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples tools noxfile.py
	$(BIN)/ruff format --check src tests benchmarks examples tools noxfile.py

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit examples -q

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

## make test-faults: the fault-injection suite (real workers, a redis-server per scenario; about
## 6 minutes); prints a table of lost, duplicated and reordered events and writes .faults/report.json
test-faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -m faults -q -p no:cacheprovider

## make test-all: the locked suite on every Python 3.10-3.13 found on this machine (nox)
test-all: $(STAMP)
	$(BIN)/nox -s tests

## make lowest / latest: the suite with every direct dependency at its declared minimum,
## or at the newest release (ignoring the lock)
lowest: $(STAMP)
	$(BIN)/nox -s lowest

latest: $(STAMP)
	$(BIN)/nox -s latest

## make servers: the integration suite on Redis 7.0, Redis Stack 7.4 and Valkey 8.1
servers: $(STAMP)
	$(BIN)/nox -s servers

## make docs: the documentation site, built in strict mode (any warning fails) into site/
# Mermaid (for the diagrams) is fetched once with npm, pinned by hash (tools/docs_mermaid.py).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## make demo: orders partitioned by customer, on the in-memory backend (or RUNNEL_REDIS_URL)
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## make bench: the benchmark suite against its own redis-server
bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) site .cache .nox .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
