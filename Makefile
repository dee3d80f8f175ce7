# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv first.
# torch is pinned to the CPU build that lies on disk here; pip would otherwise pull a CUDA build.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
DEMO_MINUTES ?= 10

# make docs DOCS_NOTEBOOKS= builds the pages from the notebooks already executed in docs/notebooks/
DOCS_NOTEBOOKS ?= notebooks

.PHONY: demo test test-fast setup lint clean docs notebooks

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

# the edit-test loop: everything but the tests marked slow (make test, and CI, run them all)
test-fast: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not slow"

# the documentation site into site/; --strict: a warning (a broken link, a missing page) fails the build
docs: $(BIN)/mkdocs $(DOCS_NOTEBOOKS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

$(BIN)/mkdocs: $(BIN)/genlab
	$(BIN)/pip install --quiet -e ".[test,docs]"
	@touch $@

# every notebook in notebooks/ run top to bottom (2 kernels at once, 1 thread each); executed copies in docs/notebooks/
notebooks: setup
	$(BIN)/pip install --quiet -e ".[notebooks]"
	$(BIN)/python tools/run_notebooks.py -j 2

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo runs site .pytest_cache
