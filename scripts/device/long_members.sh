#!/bin/bash
# Device run: the GPU check (CUDA tests + benchmarks/gpu_check.py), then teachers of the long
# schedule: 160 epochs, 10 % of the training clips validating, early stopping after 50 epochs
# without gain, the best-validation state kept (the recipe of the 160-epoch member that scored 0.774
# alone on partition 0, folds 0-3, against 0.765 for the 4-member ensemble of 80-epoch members).
#   1. four final teachers on all 300 clips (seeds 0-3): .gpu/m/final/final-teacher-L-sS.pt
#   2. two members per partition (seeds 10P+4, 10P+5) for the student's cross-validation on the
#      CPU: .gpu/m/pP/Lm<seed>/fold<F>.pt
# Resumable: a job whose model exists is skipped, so a second call, with the first call's
# long-members.tgz unpacked in the repository root (it then travels in .gpu/m), trains what is left;
# NO_CHECK=1 skips the GPU check on that call. DRY=1: a small CPU dry run.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"; DEV=cuda; EPOCHS=160; SAMPLES=50000; PARTS="0 1 2 3 4"; NPAR=16
T0=$(date +%s); STOP_AT=${STOP_AT:-555}; el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
[ "${DRY:-0}" = 1 ] && { DEV=cpu; EPOCHS=1; SAMPLES=700; PARTS="0"; NPAR=2; }
. "$HERE/setup.sh"
mkdir -p .gpu/m/final
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
cache_spectrograms
wait; el "spectrograms: $(ls $TWOLEVEL_CACHE/spec | wc -l) cached"
[ "${NO_CHECK:-0}" = 1 ] || gpu_check --samples $SAMPLES --paper-width $([ "${DRY:-0}" = 1 ] && echo 0.125 || echo 1.0)
el "long-schedule teachers"
export OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1
jobs() {
  for s in 0 1 2 3; do echo "final final-teacher-L-s$s $s"; done
  for i in 4 5; do for p in $PARTS; do for f in 0 1 2 3 4; do echo "p$p Lm$((10*p+i)) $((10*p+i)) $p $f"; done; done; done
}
one() {  # dir tag seed [fold_seed fold]
  local left=$(( STOP_AT - ($(date +%s) - T0) )); [ $left -gt 30 ] || return 0
  local common=(--seed $3 --epochs $EPOCHS --patience 50 --device $DEV --quiet)
  if [ $1 = final ]; then
    [ -f .gpu/m/final/$2.pt ] && return 0
    timeout $left "$PY" -m twolevel_cli.main train $DATA "${common[@]}" --out .gpu/m/final/$2.pt --log .gpu/m/final/$2.log > /dev/null 2>&1
  else
    [ -f .gpu/m/$1/$2/fold$5.pt ] && return 0
    mkdir -p .gpu/m/$1
    timeout $left "$PY" -m twolevel_cli.main train $DATA --folds 5 --only-folds $5 --fold-seed $4 "${common[@]}" \
      --save-fold-models .gpu/m/$1/$2 --out .gpu/m/$1/cv-$2-f$5.json --log .gpu/m/$1/cv-$2-f$5.log > /dev/null 2>&1
  fi
}
export -f one; export T0 STOP_AT PY DEV DATA EPOCHS
jobs | xargs -P $NPAR -L 1 bash -c 'one $0 $1 $2 $3 $4'
el "done: $(ls .gpu/m/final/*.pt 2>/dev/null | wc -l) final teachers, $(ls .gpu/m/p*/*/fold*.pt 2>/dev/null | wc -l) fold models"
tar czf "$OUT/long-members.tgz" --exclude="*.pt.last" .gpu/m; ls -la "$OUT"
