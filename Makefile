# Two commands on a fresh machine: `make up` runs the hub, `make test` tests it.
# Each target bootstraps .venv (Python 3.11+) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test test-pg lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "credithub needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

up: $(STAMP)
	$(BIN)/credithub up

test: $(STAMP)
	$(BIN)/python -m pytest --numprocesses auto --maxprocesses 4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package) for the load generator"; \
		(apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)) >/dev/null; }
	$(BIN)/python bench/authorizations.py
	$(BIN)/python bench/enrollments.py
	$(BIN)/python bench/settlement.py
	$(BIN)/python bench/loans.py
	$(BIN)/python bench/slowloris.py
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .credithub .pytest_cache .mypy_cache .ruff_cache
