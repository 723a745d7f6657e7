# Two entry points that work on a fresh machine (see README.md):
#   make example   set up, then run ircomp's main job on the built-in example
#   make test      set up, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
OUT ?= out

export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup example example-lenet test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml: pip takes the local CPU build on these machines.
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

example: setup
	$(VENV)/bin/ircomp build --target fpga-lut -o $(OUT)/digits_lut
	cat $(OUT)/digits_lut/report.md

example-lenet: setup
	$(VENV)/bin/ircomp opt examples/lenet/model.mlir \
	    -p "fold-batchnorm,constant-fold,cse,dce,shape-inference" \
	    -o $(OUT)/lenet/model.mlir --time-passes
	$(VENV)/bin/ircomp run $(OUT)/lenet/model.mlir \
	    --input examples/lenet/input.npy -o $(OUT)/lenet/output.npy
	$(PY) examples/lenet/check.py $(OUT)/lenet/output.npy

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q -W error::DeprecationWarning
	$(VENV)/bin/lit -q tests/lit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(OUT)
