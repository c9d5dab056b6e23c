# PruneScope: `make run` serves the dashboard on http://127.0.0.1:8000; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
# A bare `torch>=2.10` resolves to a multi-GB CUDA build; install this first when no torch is present.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

BIN := $(VENV)/bin
# The dashboard's plotly.js build (dashboard/plotly_bundle.py), made with npm when it is installed.
PLOTLYJS := dashboard/plotlyjs
PLOTLYJS_SOURCES := $(addprefix $(PLOTLYJS)/,package.json package-lock.json build.mjs src/index.js src/gl3d.js)

.PHONY: install install-test plotlyjs run demo test lint clean

install: $(VENV)/.installed plotlyjs

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test plotlyjs

# Without npm, or when the build fails (e.g. offline), the dashboard serves plotly.py's full plotly.min.js.
plotlyjs:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) -s --no-print-directory $(PLOTLYJS)/dist/manifest.json \
		|| echo "plotly.js build failed: the dashboard serves the full plotly.js bundle"; \
	elif [ ! -f $(PLOTLYJS)/dist/manifest.json ]; then \
		echo "npm not found: skipping the plotly.js build; the dashboard serves the full plotly.js bundle"; \
	fi

$(PLOTLYJS)/dist/manifest.json: $(PLOTLYJS_SOURCES)
	@echo "building the dashboard's plotly.js ($(PLOTLYJS))"
	cd $(PLOTLYJS) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && node build.mjs

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
	rm -rf $(VENV) .prunescope $(PLOTLYJS)/node_modules $(PLOTLYJS)/dist
