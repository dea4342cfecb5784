# `make demo` and `make test` work on a fresh machine with only Python >= 3.11:
# each builds a local .venv (once) with gmmkit and its dev and dask extras installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/gmmkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $(BIN)/gmmkit

demo: $(BIN)/gmmkit
	$(BIN)/gmmkit demo --out gmmkit-demo --force

test: $(BIN)/gmmkit
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(BIN)/gmmkit
	$(BIN)/ruff check .

bench: $(BIN)/gmmkit
	$(BIN)/python benchmarks/bench_cavi.py
	$(BIN)/python benchmarks/bench_vb.py
	$(BIN)/python benchmarks/bench_pymc.py

clean:
	rm -rf $(VENV) gmmkit-demo .pytest_cache .hypothesis
