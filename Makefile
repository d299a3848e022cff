# Two commands do all setup on a fresh machine:
#   make drill   -> venv + install + a real dc-east power-loss drill on local processes
#   make test    -> venv + install + ruff, mypy (config in pyproject.toml) and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test drill lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

drill: $(STAMP)
	$(BIN)/drill run dc-east-power-loss --provider local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/toxiproxy_bench.py
	$(BIN)/python benchmarks/clipstream_feed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
