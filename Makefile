# The README's two commands: `make run` (the default DVC pipeline over a few seeds) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench protocol table clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dvc,test]'
	touch $(STAMP)

install: $(STAMP)

# The default pipeline over the paired seeds that fit in 15 minutes (benchmarks/protocol.py, QUICK_SEEDS):
# dvc repro of their stages, then compare-students over them into metrics/quick/.
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.protocol quick

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# The default benchmark's whole protocol: the val grid, the default run, the table over its switches.
protocol: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.protocol all

# The experiment table, narrowed to the comparison's headline and the recipe's main knobs (README, Experiments).
TABLE_KEEP := Experiment|^baseline$$|hallucinet_|pretrained_|ceiling|teacher_top1|train_student\.(student|loss|epochs|lr)$$
table: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp show --no-pager --drop '.*' --keep '$(TABLE_KEEP)'

bench: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.suite

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
