# Quick start:  make demo   (set up + run the shipped CN model on plates the package renders)
#               make test   (set up + run the fast test suite; what CI runs)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2
# make test runs the fast suite in this many pytest-xdist processes, one test file per process at a time
# (module fixtures are built once); 0 runs it in this process
TEST_WORKERS ?= 2

.PHONY: setup demo test test-slow bench info clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[test,tflite]"
	touch $@

demo: setup
	$(BIN)/lprnet-demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

test-slow: setup
	$(BIN)/python -m pytest -q -m slow tests

bench: setup
	$(BIN)/python benchmarks/speed.py --train

info: setup
	$(BIN)/lprnet-info

clean:
	rm -rf $(VENV) demo_out .pytest_cache
