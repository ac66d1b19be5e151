# The README's two commands: `make run` (the whole DVC pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench protocol clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# The default benchmark's whole protocol: the val grid, the default run, the table over its switches.
protocol: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.protocol all

bench: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.suite

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
