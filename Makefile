# crmsync — the one entry point for developers, CI and the README.
SHELL        := /bin/bash
PYTHON       ?= python3
VENV         ?= .venv
BIN          := $(VENV)/bin
STAMP        := $(VENV)/.installed
HOST         ?= 127.0.0.1
PORT         ?= 8765
LIMITS       ?= real
FAULTS       ?=
SANDBOX_DB   ?= .run/sandbox.db
PYTEST_ARGS  ?=

.DEFAULT_GOAL := help
.PHONY: help install browser test lint bench golden run act sync reconcile fanout fanout-demo sandbox seed clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "installing crmsync, its dev tools and the Dagster extra into $(VENV) (log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e '.[dev,dagster]'; } \
		> $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install crmsync with its dev tools and the Dagster extra

BROWSERS := chromium chromium-browser google-chrome

browser:  ## install Debian's chromium for the report.html browser test, when missing and possible (never fails)
	@for b in $(BROWSERS); do command -v $$b > /dev/null 2>&1 && exit 0; done; \
	if command -v apt-get > /dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		mkdir -p $(VENV); echo "installing chromium for the report.html browser test (log: $(VENV)/browser.log)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
			> $(VENV)/browser.log 2>&1 || echo "could not install chromium (see $(VENV)/browser.log): the browser test will skip"; \
	else echo "no chromium here and no apt-get as root to install it: the browser test will skip"; fi

test: install browser  ## run the whole test suite (installs what it needs first)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install  ## ruff, mypy and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	@echo "installing the benchmarks' baselines (datacompy, csv-diff) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install -e '.[dev,bench]' && $(BIN)/python -m pip install --no-deps 'datacompy>=1.0'; } >> $(VENV)/install.log 2>&1 \
		|| { tail -n 40 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) browser  ## run the benchmarks in bench/ (not part of make test); BENCH=name runs one
	$(BIN)/python -m bench $(BENCH)

golden: install  ## rewrite tests/golden/ from sample_data/ (review the diff before committing it)
	@tmp=$$(mktemp -d); \
	$(BIN)/crmsync validate --crm sample_data/crm_customers_dirty.csv --profile generic --incomplete-address reject --out $$tmp > /dev/null; status=$$?; \
	if [ $$status -gt 1 ]; then rm -rf $$tmp; echo "crmsync validate failed (exit $$status)"; exit 1; fi; \
	cp $$tmp/rejects.csv tests/golden/rejects_dirty.csv; rm -rf $$tmp; \
	echo "wrote tests/golden/rejects_dirty.csv"
	CRMSYNC_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q -p no:xdist tests/reconcile/test_end_to_end.py -k golden
	@echo "wrote tests/golden/reconcile_summary.json"

run: install  ## start the sandbox, seed it, run the nightly job on sample_data/, print where the reports are
	$(BIN)/python scripts/demo.py

ACTIONS ?= .run/out/reconciliation/actions.csv

act: install  ## the morning review on make run's demo account: crmsync act on ACTIONS=actions.csv, then the next report
	$(BIN)/python scripts/demo.py act "$(ACTIONS)"

CRM     ?=
PROFILE ?= auto
OUT     ?= out/$(shell date +%Y-%m-%d)

sync: install  ## the nightly job against HELCIM_API_URL/HELCIM_API_TOKEN: make sync CRM=export.csv [PROFILE=…] [OUT=…]
	@test -n "$$HELCIM_API_TOKEN" || { echo "make sync: set HELCIM_API_TOKEN (and HELCIM_API_URL unless it is the real API)"; exit 2; }
	@test -n "$(CRM)" || { echo "make sync: name the CRM export: make sync CRM=export.csv [PROFILE=hubspot] [OUT=dir]"; exit 2; }
	$(BIN)/crmsync run --crm "$(CRM)" --profile "$(PROFILE)" --out "$(OUT)"

reconcile: install  ## the morning report against HELCIM_API_URL/HELCIM_API_TOKEN: make reconcile [CRM=export.csv] [OUT=…]
	@test -n "$$HELCIM_API_TOKEN" || { echo "make reconcile: set HELCIM_API_TOKEN (and HELCIM_API_URL unless it is the real API)"; exit 2; }
	$(BIN)/crmsync reconcile --out "$(OUT)" $(if $(CRM),--crm "$(CRM)" --profile "$(PROFILE)")

ACCOUNTS ?=
JOBS     ?= 4

fanout: install  ## every account of an accounts file once, through Dagster in-process: make fanout ACCOUNTS=FILE OUT=DIR [JOBS=4]
	@test -n "$(ACCOUNTS)" || { echo "make fanout: name the accounts file: make fanout ACCOUNTS=accounts.toml OUT=dir"; exit 2; }
	$(BIN)/python -m crmsync.orchestrate.fanout "$(ACCOUNTS)" --out "$(OUT)" --jobs $(JOBS)

fanout-demo: install  ## three sandbox accounts (one with faults, one with the wrong token), then make fanout on sample_data/accounts.toml
	$(BIN)/python scripts/fanout_demo.py

sandbox: install  ## run helcim-sandbox in the foreground (PORT, LIMITS, FAULTS, SANDBOX_DB)
	@mkdir -p $(dir $(SANDBOX_DB))
	$(BIN)/helcim-sandbox serve --host $(HOST) --port $(PORT) --db $(SANDBOX_DB) --limits $(LIMITS) $(if $(FAULTS),--faults $(FAULTS))

seed: install  ## seed the sandbox database SANDBOX_DB with N customers (default 200)
	@mkdir -p $(dir $(SANDBOX_DB))
	$(BIN)/helcim-sandbox seed --db $(SANDBOX_DB) --customers $(or $(N),200)

clean:  ## remove generated outputs, caches and the virtual environment
	rm -rf $(VENV) .run out .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
