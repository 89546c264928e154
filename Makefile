# Two entry points (see README.md): `make demo` runs the main job on the embedded defaults,
# `make test` runs the test suite. Both create the virtual environment at .venv first.

VENV   := .venv
PYTHON := $(VENV)/bin/python
SYNEG  := $(VENV)/bin/syneg
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: setup browser demo test bench clean

setup: $(STAMP) browser

# The tests open `syneg view` and `syneg report` pages in headless chromium (they skip without it). It is
# a system package, so it is installed only where apt-get is usable as root, and a failure is not fatal.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed (needs apt-get as root): the browser tests will skip"

# llama.cpp is compiled once per CPU level (GGML_CPU_ALL_VARIANTS: x86-64 baseline, AVX2, AVX-512, …
# as loadable libraries, GGML_BACKEND_DL), and syneg loads the best level this CPU supports at run time
# (src/syneg/llm/cpu_backend.py): machines of this project's kind differ in CPU, and one wheel serves
# them all. packaging/llama-cpu-variants.cmake puts the levels into the wheel and leaves AMX out (a
# sandbox that did not grant AMX crashed in ggml_backend_amx_mul_mat). The wheel is kept under a name
# that says how it was built, outside pip's cache, so that a wheel built otherwise is never installed.
LLAMA_CPP    := $(shell sed -n 's/.*"\(llama-cpp-python\)\[server\]\(==[0-9.]*\)".*/\1\2/p' pyproject.toml)
LLAMA_WHEELS := $(HOME)/.cache/syneg/wheels/$(subst ==,-,$(LLAMA_CPP))-cpu-levels-$(shell cksum < packaging/llama-cpu-variants.cmake | cut -d' ' -f1)
LLAMA_CMAKE  := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
                -DCMAKE_PROJECT_llama_cpp_INCLUDE=$(CURDIR)/packaging/llama-cpu-variants.cmake

# Reinstalled whenever pyproject.toml changes. torch is pinned to the CPU wheel; llama-cpp-python
# compiles once (about 25 minutes on 2 cores) and later setups install the kept wheel.
$(STAMP): pyproject.toml Makefile packaging/llama-cpu-variants.cmake
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE)" \
		$(PYTHON) -m pip wheel --quiet --no-cache-dir --no-deps --wheel-dir $(LLAMA_WHEELS) "$(LLAMA_CPP)"
	$(PYTHON) -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The whole pipeline (mine, synthesize, mix, train, evaluate) on the demo dataset; rerunning resumes.
demo: $(STAMP)
	$(SYNEG) run --demo --output $(DEMO_OUT)

# One pytest-xdist worker per usable core, at most 4; --dist loadgroup keeps a module's tests on one worker and
# the Ray tests together (tests/conftest.py). A plain `pytest` runs them one by one.
test: $(STAMP) browser
	$(PYTHON) -m pytest -n auto --dist loadgroup

bench: $(STAMP)
	$(PYTHON) bench/foundation_bench.py --data ../shared/datasets/scifact --out bench/results/foundation.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
