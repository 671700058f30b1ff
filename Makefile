# Two entry points for a fresh machine (Python 3.11, Java 17, no GPU needed):
#   make demo   install with the serve extra, then run the main job on the shipped model and a shipped clip
#   make test   install with every extra (dev, train, serve, kserve), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# 2 shared cores: keep BLAS from oversubscribing them next to torch's own threads.
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: install install-demo demo demo-serve test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

# Editable installs with the extras each entry point needs; one stamp per set of extras.
EXTRAS_demo := serve
EXTRAS_dev  := dev,train,serve,kserve
$(VENV)/.installed-%: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[$(EXTRAS_$*)]'
	touch $@

install: $(VENV)/.installed-dev
install-demo: $(VENV)/.installed-demo

# make demo: package the shipped model, start TorchServe (loopback, its own run folder), explain the
# shipped example through the endpoint into out/, print where report.html is, and stop the server,
# also when a step fails or is interrupted. Without Java or a shipped model: the local demo.
DEMO_RUN     ?= runs/demo-serve
# auto: rounds of perturbations until the selections converge, at most 50,000 (the server's
# default and cap; the paper used 50,000).
DEMO_SAMPLES ?= auto
DEMO_CLIP    ?= twolevel/examples/enemy-unknown.ogg
# An emotion, so the demo shows both levels: energy <- its strongest mid-levels <- spectrogram segments.
DEMO_TARGET  ?= energy

demo: install-demo
	@if ! $(BIN)/python -c "import sys; from twolevel.checkpoint import default_model_path as p; sys.exit(not p().is_file())"; then \
	  echo "demo: no trained model shipped yet: running the local demo instead"; \
	  $(BIN)/twolevel-cli demo --out out; \
	elif ! command -v java >/dev/null 2>&1 && [ ! -x "$$JAVA_HOME/bin/java" ]; then \
	  echo "demo: Java is not installed, so TorchServe cannot run: running the local demo instead"; \
	  $(BIN)/twolevel-cli demo --out out; \
	else \
	  $(MAKE) --no-print-directory demo-serve; \
	fi

demo-serve: install-demo
	@set -e; \
	trap '$(BIN)/twolevel-cli serve stop --run-dir $(DEMO_RUN)' EXIT; \
	trap 'exit 130' INT TERM; \
	$(BIN)/twolevel-cli package --out $(DEMO_RUN)/model_store; \
	$(BIN)/twolevel-cli serve start --run-dir $(DEMO_RUN) --model-store $(DEMO_RUN)/model_store; \
	endpoint=$$($(BIN)/python -c "import json; print(json.load(open('$(DEMO_RUN)/server.json'))['inference_address'])"); \
	TWOLEVEL_RUN_DIR=$(DEMO_RUN) $(BIN)/twolevel-cli predict $(DEMO_CLIP) --endpoint $$endpoint --effects out; \
	TWOLEVEL_RUN_DIR=$(DEMO_RUN) $(BIN)/twolevel-cli explain $(DEMO_CLIP) --endpoint $$endpoint \
	  --target $(DEMO_TARGET) --samples $(DEMO_SAMPLES) --out out; \
	echo; echo "report: $$(pwd)/out/report.html (explained through TorchServe at $$endpoint)"

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m pytest -q benchmarks --benchmark-only

clean:
	rm -rf out .pytest_cache build *.egg-info
