#!/usr/bin/env bash
# gpu_check.sh: the GPU path of twolevel, checked and measured in at most ~8 minutes.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default OUT_DIR: $OUT, else benchmarks/results)
#
# Runs on a bare CUDA machine that has Python and PyTorch but none of twolevel's other packages:
#   1. checks which packages are missing and installs them from ./.whl (no network needed);
#      when .whl lacks them it prints the `pip download` command to run on a machine with network;
#   2. the CUDA tests (tests/test_cuda.py: front end GPU == CPU within 1e-3, predictions,
#      explain and Griffin-Lim on the GPU; tests/test_runtime.py: the fast inference path);
#   3. benchmarks/gpu_check.py: 50,000-sample explanations of the shipped model (fp32, auto, and the
#      library's bf16 and fp16 precisions with their Jaccard to fp32) and of the paper-width network
#      (fp32, bf16): samples/s, TFLOP/s;
#   4. benchmarks/gpu_trunks.py: a multi-trunk model's convolutions grouped vs one trunk after another;
#   5. benchmarks/gpu_sweep.py: mask building and the bare forward per batch size, memory layout
#      and precision, and the best of them replayed as a CUDA graph;
#   6. benchmarks/gpu_phases.py: an explanation's phases, cold and warm, per cudnn.benchmark setting,
#      precision and batch size, and a torch.profiler table of one warm run.
# Results: OUT_DIR/gpu_check.md and .json, OUT_DIR/gpu_trunks.md and .json, OUT_DIR/gpu_sweep.md and
# .json, OUT_DIR/gpu_phases.md and .json, OUT_DIR/gpu_profile.txt, OUT_DIR/gpu_tests.log (10 files: the
# device tool returns 8, so tar them). Steps 2-6 run in that order, each skipped when less of STOP_AT
# (seconds from the CUDA tests on; default 860, the sum of the steps' limits) is left than it needs:
# STOP_AT=430 fits the device tool's 10-minute call with the start and the transfers.
#
# Preparing .whl (on any machine with network, for the GPU machine's Python version, e.g. 3.11):
#   pip download --only-binary=:all: --no-deps --python-version 3.11 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
#       nnAudio==0.3.4 soundfile cffi pycparser soxr scikit-image lazy_loader imageio tifffile \
#       networkx pillow packaging scipy numpy tqdm pytest iniconfig pluggy
#   (.whl/ is git-ignored; carry it with the working tree.) torch itself is never installed here.
#   For Python 3.11 this is 75 MB; leave numpy out (PyTorch images ship it) to stay under a 64 MiB
#   carry limit: 58 MB. A wheel for another Python version is refused by pip and reported missing.
#   Measured: the H100 machine lent on 2026-11-26 ran Python 3.12 with scipy, scikit-image, tqdm and
#   pytest already installed; it needed only nnAudio==0.3.4 soundfile cffi pycparser soxr (1.9 MB,
#   --python-version 3.12). pip installs all of .whl/ at once, so one wheel for the wrong Python fails all.
#
# A dry run without a GPU (every line, small): TWOLEVEL_CHECK_DEVICE=cpu GPU_CHECK_SAMPLES=700 \
#   GPU_CHECK_PAPER_WIDTH=0.125 bash benchmarks/gpu_check.sh /tmp/gpu-dry-run
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
PY="${PYTHON:-python3}"
DEVICE="${TWOLEVEL_CHECK_DEVICE:-cuda}"
SAMPLES="${GPU_CHECK_SAMPLES:-50000}"
PAPER_WIDTH="${GPU_CHECK_PAPER_WIDTH:-1.0}"
STOP_AT="${STOP_AT:-860}"  # seconds: a step that would start with less left than it needs is skipped
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" MPLBACKEND=Agg

# import name -> wheel name
declare -A WHEEL=([nnAudio]=nnAudio==0.3.4 [soundfile]=soundfile [soxr]=soxr [skimage]=scikit-image
                  [scipy]=scipy [numpy]=numpy [tqdm]=tqdm [pytest]=pytest)
missing() {
  local out=()
  for mod in "${!WHEEL[@]}"; do "$PY" -c "import $mod" >/dev/null 2>&1 || out+=("${WHEEL[$mod]}"); done
  echo "${out[@]:-}"
}
"$PY" -c "import torch" 2>/dev/null || { echo "gpu_check: PyTorch is not installed for $PY" >&2; exit 2; }
need="$(missing)"
if [ -n "$need" ]; then
  echo "gpu_check: missing: $need"
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "gpu_check: installing every wheel in .whl/ (no index, no dependencies resolved online)"
    "$PY" -m pip install -q --no-index --no-deps .whl/*.whl || true
  fi
  need="$(missing)"
  if [ -n "$need" ]; then
    echo "gpu_check: still missing: $need. Put their wheels (and those of their dependencies) into .whl/:" >&2
    sed -n '/^# Preparing .whl/,/reported missing/p' "$0" >&2
    exit 2
  fi
fi
"$PY" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
PY

status=0
T0=$(date +%s)
# step SECONDS_NEEDED NAME: true when at least SECONDS_NEEDED of STOP_AT are left, else says the step
# is skipped; a step runs under `timeout $(limit_for ITS_LIMIT)`, so none runs past STOP_AT.
left() { echo $(( STOP_AT - ($(date +%s) - T0) )); }
step() { local l; l=$(left); [ "$l" -ge "$1" ] && { echo "== $2 [$(( $(date +%s) - T0 )) s]"; return 0; }
         echo "== $2 skipped: $l s of STOP_AT left"; return 1; }
limit_for() { local l; l=$(left); echo $(( $1 < l ? $1 : l )); }

if step 60 "CUDA tests (device: $DEVICE)"; then
  TWOLEVEL_CHECK_DEVICE="$DEVICE" timeout "$(limit_for 150)" "$PY" -m pytest -q -p no:cacheprovider -p no:benchmark \
    tests/test_cuda.py tests/test_runtime.py 2>&1 | tee "$OUT_DIR/gpu_tests.log" | tail -15
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if step 60 "explanations ($SAMPLES samples)"; then
  timeout "$(limit_for 300)" "$PY" benchmarks/gpu_check.py --device "$DEVICE" --samples "$SAMPLES" --paper-width "$PAPER_WIDTH" \
    ${GPU_CHECK_PAPER_MODEL:+--paper-model "$GPU_CHECK_PAPER_MODEL"} --out "$OUT_DIR" || status=1
fi

if step 20 "trunk layouts (grouped vs one trunk after another, fp32 and bf16)"; then
  if [ "$DEVICE" = cpu ]; then TRUNKS=(--batch-sizes 32 --repeats 1); else TRUNKS=(--batch-sizes 1024 4096 16384); fi
  timeout "$(limit_for 60)" "$PY" benchmarks/gpu_trunks.py --device "$DEVICE" "${TRUNKS[@]}" --out "$OUT_DIR" || status=1
fi

if step 40 "forward sweep (batch size x layout x precision, CUDA graph)"; then
  if [ "$DEVICE" = cpu ]; then SWEEP=(--batch-sizes 32 --batches 1); else SWEEP=(); fi
  timeout "$(limit_for 150)" "$PY" benchmarks/gpu_sweep.py --device "$DEVICE" "${SWEEP[@]}" --out "$OUT_DIR" || status=1
fi

if step 60 "phases of an explanation, cold and warm (cudnn.benchmark, precision, batch size; profile)"; then
  timeout "$(limit_for 200)" "$PY" benchmarks/gpu_phases.py --device "$DEVICE" --samples "$SAMPLES" \
    --paper-width "$PAPER_WIDTH" --out "$OUT_DIR" | grep -v '^|' || status=1
fi
echo "gpu_check: results in $OUT_DIR/gpu_check.md (exit $status, $(( $(date +%s) - T0 )) s)"
exit $status
