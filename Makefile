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

# The main job on the bundled example. LABELAGENT_LLM picks an LLM (default: none); a
# simulated operator answers the review queue from the gold file, 120 labels at most.
LABELAGENT_LLM ?= none
demo: $(STAMP)
	rm -rf $(DEMO)
	$(VENV)/bin/labelagent init $(DEMO) --labels examples/support/labels.json
	$(VENV)/bin/labelagent import $(DEMO) examples/support/messages.csv --id-col id
	$(VENV)/bin/labelagent run $(DEMO) --llm "$(LABELAGENT_LLM)" --rounds 8 --batch-size 40 \
		--human-budget 120 --oracle-file examples/support/gold.csv
	$(VENV)/bin/labelagent export $(DEMO) $(DEMO)/labels.csv
	$(PY) -m agent.app.score $(DEMO)/labels.csv examples/support/gold.csv
	$(VENV)/bin/labelagent report $(DEMO)  # PNG figures + report.html; prints its path

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check agent tests evals

typecheck: $(DEVSTAMP)
	$(VENV)/bin/mypy agent

test: $(DEVSTAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(PY) -m evals.smoke

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .mypy_cache
