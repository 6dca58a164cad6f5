# stepstone: `make dev` runs the example app; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test lint typecheck unit system-deps bench bench-quick chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# PostgreSQL (for the PostgreSQL store's tests) and Chromium (for the dashboard's).
system-deps:
	bash scripts/system-deps.sh

dev: install
	@mkdir -p .stepstone
	$(BIN)/stepstone dev examples.shop:app

lint: install
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests examples $(wildcard bench)

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: install system-deps lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

# The benchmarks' own dependencies (DBOS, matplotlib, psutil, py-spy): the `bench` extra,
# never a dependency of stepstone itself. `make bench-quick` runs in a few minutes.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: install system-deps $(BENCH_STAMP)
	$(BIN)/python -m bench

bench-quick: install system-deps $(BENCH_STAMP)
	$(BIN)/python -m bench --quick

chaos: install system-deps
	STEPSTONE_CHAOS=long $(BIN)/pytest -q tests/test_chaos.py

clean:
	rm -rf $(VENV) .stepstone .mypy_cache .ruff_cache .pytest_cache
