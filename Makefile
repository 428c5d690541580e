# volt_assets: the README's commands. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.volt/dagster_home
DAGSTER_PORT ?= 3000

.PHONY: install test test-fast demo dev stack-up stack-down bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,devstack]"
	touch $(STAMP)

install: $(STAMP)

## make test: ruff (lint and format), then the whole suite on real PostgreSQL and S3 endpoints it starts itself
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

## make demo: stack up, seed, the whole pipeline over the demo window, a summary; no process left
demo: $(STAMP)
	$(BIN)/volt-assets demo

## make dev: the stack, then the Dagster UI on http://127.0.0.1:3000 with the daemon (DAGSTER_PORT=3001 for another port).
## Ctrl-C stops Dagster and leaves the stack running (every write it answered is on disk);
## `make stack-down` stops it.
dev: $(STAMP)
	$(BIN)/volt-assets stack up
	$(BIN)/python -m volt_assets.devstack.instance_config "$(DAGSTER_HOME)"
	@trap 'true' INT; $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT); \
	  echo "Dagster stopped. The stack keeps running (every write it answered is on disk):"; \
	  $(BIN)/volt-assets stack status; echo "Stop it with: make stack-down"

## make test-fast: lint, then the library's and the definitions' tests (volt_assets_tests/unit/), about a minute
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest volt_assets_tests/unit

stack-up: $(STAMP)
	$(BIN)/volt-assets stack up

stack-down: $(STAMP)
	$(BIN)/volt-assets stack down

## make bench: the lake against its floors (Dagster alone, the server's JSON) and targets (bench/RESULTS.md)
## BENCH_ARGS="--quick" for a smoke run; "--rows 5000000" for a bigger table
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,devstack,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make screenshots: the Dagster UI in headless Chromium -> docs/img/*.png (scripts/screenshots.py)
## needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)
SCREENSHOTS_STAMP := $(VENV)/.screenshots-installed
$(SCREENSHOTS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,devstack,screenshots]"
	touch $(SCREENSHOTS_STAMP)

screenshots: $(SCREENSHOTS_STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	-$(BIN)/volt-assets stack down
	rm -rf $(VENV) .volt
