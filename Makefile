# stepstone: `make dev` runs the example app; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The benchmarks' own dependencies (DBOS, matplotlib, psutil, py-spy): the `bench` extra,
# never a dependency of stepstone itself. `make bench-quick` runs in a few minutes.
# `make test` installs it too: the bench's smoke tests count DBOS's database work.
BENCH_STAMP := $(VENV)/.bench-installed

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

test: install $(BENCH_STAMP) system-deps lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: install system-deps $(BENCH_STAMP)
	$(BIN)/python -m bench

bench-quick: install system-deps $(BENCH_STAMP)
	$(BIN)/python -m bench --quick

# The long reliability run: chaos at scale on both databases (>= 200 SIGKILLs each, pauses
# past the lease, a PostgreSQL restart), 10,000+ fuzz cases over HTTP, then each deliberate
# breakage of scripts/breakages.py applied to a copy of the source, which the chaos and
# kill tests must catch. Its figures are printed at the end.
CHAOS_SUMMARY := .stepstone/chaos-summary.txt

chaos: install system-deps
	@mkdir -p .stepstone && rm -f $(CHAOS_SUMMARY)
	STEPSTONE_CHAOS=long STEPSTONE_CHAOS_SUMMARY=$(CURDIR)/$(CHAOS_SUMMARY) \
	  $(BIN)/pytest -q -p no:cacheprovider tests/test_chaos.py tests/test_fuzz_http.py \
	  tests/test_semantics_property.py; tests=$$?; \
	$(BIN)/python scripts/breakages.py >> $(CHAOS_SUMMARY) 2>&1; broken=$$?; \
	echo; echo "== make chaos: figures =="; cat $(CHAOS_SUMMARY); \
	test $$tests -eq 0 && test $$broken -eq 0

clean:
	rm -rf $(VENV) .stepstone .mypy_cache .ruff_cache .pytest_cache
