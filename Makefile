# Two commands a newcomer needs: `make demo` (set up, then run the main job) and
# `make test` (set up, then lint and run the test suite). Both create .venv on first use.
# TORCH_SPEC pins the CPU build of torch; GPU users override it, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/recgym: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/recgym

demo: setup
	$(BIN)/recgym demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/env_throughput.py --env SyntheticMDP-v0

clean:
	rm -rf $(VENV)
