# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv first.
# torch is pinned to the CPU build that lies on disk here; pip would otherwise pull a CUDA build.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
DEMO_MINUTES ?= 10

.PHONY: demo test setup lint clean notebooks

$(BIN)/genlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

setup: $(BIN)/genlab

demo: setup
	$(BIN)/genlab tour --minutes $(DEMO_MINUTES) -o demo

test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# every notebook in notebooks/ run top to bottom (2 kernels at once, 1 thread each); executed copies in docs/notebooks/
notebooks: setup
	$(BIN)/pip install --quiet -e ".[notebooks]"
	$(BIN)/python tools/run_notebooks.py -j 2

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo runs .pytest_cache
