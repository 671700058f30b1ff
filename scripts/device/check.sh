#!/bin/bash
# Device run: the GPU path of the shipped model checked and measured in at most ~7 minutes, the most
# needed first, each step skipped when the time left (STOP_AT, seconds) would not cover it:
#   1. the CUDA tests (tests/test_cuda.py, tests/test_runtime.py);
#   2. benchmarks/gpu_check.py: 50,000-sample explanations (shipped model fp32, bf16, auto; paper width);
#   3. benchmarks/gpu_trunks.py: a multi-trunk model's convolutions grouped vs one trunk after another;
#   4. benchmarks/gpu_phases.py: an explanation's phases, cold and warm, and a profile;
#   5. benchmarks/gpu_sweep.py: the bare forward per batch size, layout, precision, CUDA graph.
# Needs .whl (the wheels the machine lacks; see README.md here). Run with carry [".whl"]:
#   bash scripts/device/check.sh                   (DRY=1: on the CPU, small, to try it here first)
# Results in $OUT: gpu_tests.log, gpu_check.*, gpu_trunks.*, gpu_phases.*, gpu_profile.txt, gpu_sweep.*.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/../.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"; DEV=${DEV:-cuda}
T0=$(date +%s); STOP_AT=${STOP_AT:-430}; el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
SAMPLES=50000; WIDTH=1.0; SWEEP=(); TRUNKS=()
[ "${DRY:-0}" = 1 ] && { DEV=cpu; SAMPLES=700; WIDTH=0.125; SWEEP=(--batch-sizes 32 --batches 1); TRUNKS=(--batch-sizes 32 --repeats 1); }
. "$HERE/setup.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
step() {  # seconds-needed seconds-allowed name command...: runs the command unless too little time is left
  local need=$1 limit=$2 name=$3; shift 3
  local left=$(( STOP_AT - ($(date +%s) - T0) ))
  [ $left -ge $need ] || { el "$name skipped: $left s left"; return 0; }
  el "$name"; timeout $(( limit < left ? limit : left )) "$@"; echo "$name exit $?"
}
export OMP_NUM_THREADS=4
step 60 110 "CUDA tests" bash -c "TWOLEVEL_CHECK_DEVICE=$DEV $PY -m pytest -q -p no:cacheprovider -p no:benchmark \
  tests/test_cuda.py tests/test_runtime.py > $OUT/gpu_tests.log 2>&1; rc=\$?; tail -2 $OUT/gpu_tests.log; exit \$rc"
step 60 130 "gpu_check" "$PY" benchmarks/gpu_check.py --device $DEV --samples $SAMPLES --paper-width $WIDTH --out "$OUT"
step 20 50 "gpu_trunks" "$PY" benchmarks/gpu_trunks.py --device $DEV "${TRUNKS[@]}" --out "$OUT"
step 60 110 "gpu_phases" bash -c "$PY benchmarks/gpu_phases.py --device $DEV --samples $SAMPLES --paper-width $WIDTH \
  --out $OUT | grep -v '^|'"
step 40 80 "gpu_sweep" "$PY" benchmarks/gpu_sweep.py --device $DEV "${SWEEP[@]}" --out "$OUT"
el "done"
