# Two entry points (see README.md): `make demo` runs the main job on the embedded defaults,
# `make test` runs the test suite. Both create the virtual environment at .venv first.

VENV   := .venv
PYTHON := $(VENV)/bin/python
SYNEG  := $(VENV)/bin/syneg
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: setup demo test bench clean

setup: $(STAMP)

# Reinstalled whenever pyproject.toml changes. torch is pinned to the CPU wheel; llama-cpp-python
# compiles once (about 10 minutes on 2 cores) and pip reuses the wheel from its cache afterwards.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The whole pipeline (mine, synthesize, mix, train, evaluate) on the demo dataset; rerunning resumes.
demo: $(STAMP)
	$(SYNEG) run --demo --output $(DEMO_OUT)

test: $(STAMP)
	$(PYTHON) -m pytest

bench: $(STAMP)
	$(PYTHON) bench/foundation_bench.py --data ../shared/datasets/scifact --out bench/results/foundation.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
