#!/bin/bash
# Device run: the GPU path checked with the shipped model, then the teacher search
# (paper width and half width against the w0.125 member, partition 0, seed 0) on the GPU.
# DRY=1: a small CPU dry run.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
DEV=cuda; EPOCHS=80; STOP_AT=${STOP_AT:-505}; SAMPLES=50000; FOLDS="0 1 2 3 4"
[ "${DRY:-0}" = 1 ] && { DEV=cpu; EPOCHS=1; SAMPLES=700; FOLDS="0"; DRYW=0.125; }
. "$HERE/setup.sh"
mkdir -p .gpu/res
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
el "spectrogram cache (8 processes)"
cache_spectrograms
wait; el "spectrograms: $(ls $TWOLEVEL_CACHE/spec | wc -l) cached"
gpu_check --samples $SAMPLES --paper-width ${DRYW:-1.0}
el "teacher search: 3 recipes x folds [$FOLDS], one process per fold"
run() {  # tag width lr
  for f in $FOLDS; do
    OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1 timeout $(( STOP_AT - ($(date +%s) - T0) )) "$PY" -m twolevel_cli.main train $DATA \
      --folds 5 --only-folds $f --fold-seed 0 --seed 0 --width ${DRYW:-$2} --lr $3 --epochs $EPOCHS --device $DEV \
      --out .gpu/res/cv-$1-f$f.json --log .gpu/res/cv-$1-f$f.log --quiet > .gpu/res/cv-$1-f$f.out 2>&1 &
  done
}
run w1-lr6e-3 1.0 0.006; run w1-lr2e-3 1.0 0.002; run w0.5-lr6e-3 0.5 0.006
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
wait; el "teacher search done"
for f in .gpu/res/*.log; do echo "$f: $(wc -l < $f) epochs, last: $(tail -1 $f | cut -c1-160)"; done
tar czf "$OUT/teacher-search.tgz" .gpu/res
el "end"
