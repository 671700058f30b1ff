# Two entry points for a fresh machine (Python 3.11, Java 17, no GPU needed):
#   make demo   install, then run the main job on the shipped model and a shipped clip
#   make test   install with the dev extras, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# 2 shared cores: keep BLAS from oversubscribing them next to torch's own threads.
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/twolevel-cli demo --out out

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m pytest -q benchmarks --benchmark-only

clean:
	rm -rf out .pytest_cache build *.egg-info
