# The two commands of the README: `make run` and `make test`. Both set up .venv on a
# fresh machine (Python >= 3.11 and make are all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run demo test bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# run, demo and test use the embedded Postgres when AGNT_DATABASE_URL is unset: the
# `embedded` extra (pgserver), which a production install leaves out.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[embedded]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.run-installed $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[bench,embedded]"
	touch $@ $(VENV)/.run-installed

## run: a worker and the admin page (127.0.0.1:8000); with no AGNT_DATABASE_URL, on
## an embedded Postgres in ./.agnt, with a token made for it (printed the first time)
run: $(VENV)/.run-installed
	$(BIN)/agnt-jobs worker --admin

## demo: make run on demo data, with local stand-ins for every outside system
## (gateway, A2A agents, marketplaces, webhooks, alerts, localstripe); every job is
## run once at start. On an embedded Postgres of its own, from scratch in ./.agnt-demo.
demo: $(VENV)/.bench-installed
	rm -rf .agnt-demo
	env -u AGNT_DATABASE_URL AGNT_DATA_DIR=.agnt-demo $(BIN)/agnt-jobs demo run

## test: run the whole test suite against a real Postgres
test: $(VENV)/.test-installed
	$(BIN)/pytest $(PYTEST_ARGS)

## bench: the benchmarks of the README's performance section, on the server of
## AGNT_DATABASE_URL; e.g. make bench BENCH_ARGS="--scale 10 --only jobs"
bench: $(VENV)/.bench-installed
	$(BIN)/agnt-jobs bench $(BENCH_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/agnt-jobs schedules lint

format: $(VENV)/.test-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .agnt .agnt-demo
