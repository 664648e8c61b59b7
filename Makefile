# The README's two commands are `make demo` and `make test`; both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
NATIVE_SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.h') CMakeLists.txt pyproject.toml

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first and pinned: on a CPU machine that is the CPU wheel, and the package's own
# `torch>=2.1` extra is then already satisfied, so pip never reaches for a CUDA build.
$(VENV)/.installed: $(NATIVE_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
	$(PIP) install -q --no-build-isolation -e ".[torch,test,bench]"
	touch $@

# The whole flow on the simulated H100: trace a GPT step, plan its clocks, run it, plot it.
demo: setup
	$(VENV)/bin/gearshift demo

# A hung test fails the run after 15 min with every thread's stack (the thread method: one
# test sets its own SIGALRM) instead of running into CI's limit with nothing to show.
TEST_TIMEOUT := -p timeout --timeout=900 --timeout-method=thread

test: setup
	$(PY) -m pytest -q $(TEST_TIMEOUT)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(TEST_TIMEOUT)

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf build $(VENV) .pytest_cache
