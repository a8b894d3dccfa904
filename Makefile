# Airloop: two commands do all set-up on a fresh machine with Python 3.11.
#   make demo   venv + pinned deps, Airflow DB, pools, source data, then Airflow standalone
#   make test   venv + pinned deps, then the whole test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME := $(CURDIR)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv setup demo test test-fast bench backfill pools lint clean services-up services-down season backtest screenshots

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/.installed: requirements.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Airloop pins Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==26.3
	$(BIN)/pip install -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

venv: $(BIN)/.installed ## create .venv with the pinned requirements

setup: venv ## migrate Airflow's DB, create pools, load the source database
	@mkdir -p data logs
	$(BIN)/airflow db migrate
	$(BIN)/python -m airloop setup

demo: setup ## start Airflow standalone on SQLite (UI at http://localhost:8080)
	@bash scripts/demo.sh

test: venv ## run the whole test suite (this is what CI runs)
	@bash scripts/test.sh

screenshots: venv ## refresh the README's pictures in docs/screenshots/ (the browser test on a real Airflow, a few minutes)
	@bash scripts/ensure-chromium.sh
	AIRLOOP_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -p no:cacheprovider -q tests/browser/test_screenshots.py
	@if command -v optipng >/dev/null; then optipng -quiet -o2 docs/screenshots/*.png; else echo "(optipng not found: the PNGs stay as chromium wrote them)"; fi

bench: venv ## run the benchmarks (prints figures and ratios)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

backfill: ## backfill a DAG with progress: make backfill DAG=ingest_flights FROM=2026-03-01 TO=2026-03-07 [REPROCESS=none|failed|completed]
	@test -n "$(DAG)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill DAG=<dag_id> FROM=YYYY-MM-DD TO=YYYY-MM-DD [REPROCESS=none|failed|completed]"; exit 2; }
	$(BIN)/airloop backfill $(DAG) $(FROM) $(TO) --reprocess $(or $(REPROCESS),none)

season: setup ## the whole loop through the scheduler, then a summary: make season FROM=2026-06-15 TO=2026-06-28 [WARMUP=28] [DRY_RUN=1]
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make season FROM=YYYY-MM-DD TO=YYYY-MM-DD [WARMUP=28] [DRY_RUN=1]"; exit 2; }
	$(BIN)/airloop season $(FROM) $(TO) --warmup-days $(or $(WARMUP),28) $(if $(DRY_RUN),--dry-run)

BT_FROM := $(or $(FROM),2026-03-30)
BT_TO := $(or $(TO),2026-12-28)
backtest: setup ## replay history per retraining policy: make backtest [FROM=2026-03-30 TO=2026-12-28] [POLICIES="frozen scheduled"] [WORKSPACE=dir]
	$(BIN)/airloop backtest $(BT_FROM) $(BT_TO) $(foreach p,$(or $(POLICIES),frozen scheduled drift scheduled+drift),--policy $(p)) \
		--workspace $(or $(WORKSPACE),data/backtest/$(BT_FROM)_$(BT_TO))

services-up: venv ## services profile: Airflow on PostgreSQL + Celery (cpu, gpu workers) + S3, in the background
	@bash scripts/services-up.sh

services-down: ## stop what services-up started
	@bash scripts/services-down.sh

clean: ## remove local state (data/, logs/, the Airflow DB); keeps .venv
	rm -rf data logs airflow.db airflow.db-* simple_auth_manager_passwords.json.generated
