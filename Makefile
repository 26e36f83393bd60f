# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO   ?= demo-project
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck smoke-eval install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned: a CPU build lies on this disk; a bare requirement pulls multi-GB CUDA.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(DEVSTAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(STAMP)
install-dev: $(DEVSTAMP)

demo: $(STAMP)
	$(PY) -m agent.demo --project $(DEMO)

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check agent tests evals

typecheck: $(DEVSTAMP)
	$(VENV)/bin/mypy agent

test: $(DEVSTAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(PY) -m evals.smoke

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .mypy_cache
