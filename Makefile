# PruneScope: `make run` serves the dashboard on http://127.0.0.1:8000; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
# A bare `torch>=2.10` resolves to a multi-GB CUDA build; install this first when no torch is present.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

BIN := $(VENV)/bin

.PHONY: install install-test run demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/prunescope db upgrade
	$(BIN)/prunescope demo --if-empty
	$(BIN)/prunescope serve --host $(HOST) --port $(PORT)

demo: install
	$(BIN)/prunescope demo

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .prunescope
