# deep-tree-echo — the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= .echo
PYTEST_ARGS ?=

.PHONY: install run test test-deps lint bench mutate clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: serve the gateway on 127.0.0.1:8000 with SQLite memory in ./.echo (embedded engine)
run: $(STAMP)
	$(VENV)/bin/deep-tree-echo serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

## test-deps: make sure the real servers the suite starts (redis-server, PostgreSQL, nats-server) exist
test-deps:
	@bash scripts/ensure-test-servers.sh

## test: install, ensure servers, run the whole suite
test: $(STAMP) test-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy --strict src

bench: $(STAMP)
	$(PY) bench/events.py
	$(PY) bench/resilience.py
	$(PY) bench/memory.py
	$(PY) bench/gateway.py

## mutate: mutation testing (mutmut) on the critical modules, one at a time against their own
## tests; prints the kill rate per module and the surviving mutants. Slow: not part of `make test`.
## Bounded: at most 300 s per module and 3600 s in all (--budget / --total), plus a few minutes of
## hand-written mutants; modules left when the total is spent are skipped and reported unrun.
## MUTATE_ARGS picks modules and limits, e.g. MUTATE_ARGS="rate_limiter hlc --budget 600".
MUTATE_ARGS ?=
mutate: $(STAMP) test-deps
	$(PY) scripts/mutate.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) .echo .mutmut .pytest_cache .mypy_cache .ruff_cache build dist
