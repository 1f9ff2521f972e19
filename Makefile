# One-command setup: every target creates/updates the local virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test check lint typecheck contracts unit integration test-slow test-all demo bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,fast]"
	touch $(STAMP)

install: $(STAMP)

## make test: install everything, then lint, type-check, import contracts and the whole test suite
test: $(STAMP) check
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

check: lint typecheck contracts

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

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

## make test-all: the suite on every Python 3.10-3.13 found on this machine (nox)
test-all: $(STAMP)
	$(BIN)/nox

## make demo: orders partitioned by customer, on the in-memory backend (or RUNNEL_REDIS_URL)
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## make bench: the benchmark suite against its own redis-server
bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
