#!/bin/bash
# Device run: the distillation recipe's 4 teacher members (w0.125, seeds 10P+I) on
# partitions 2, 3, 4 with their fold models saved, for the student's cross-validation on the CPU;
# then, with what time is left, members trained 160 epochs on partition 0 (seed 0).
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"; DEV=${DEV:-cuda}; EPOCHS=${EPOCHS:-80}
T0=$(date +%s); STOP_AT=${STOP_AT:-470}
. "$HERE/setup.sh"
mkdir -p .gpu/m; export OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1
cache_spectrograms; wait
echo "[$(( $(date +%s) - T0 )) s] spectrograms cached"
jobs() {
  for p in 2 3 4; do for i in 0 1 2 3; do for f in 0 1 2 3 4; do echo "p$p m$((10*p+i)) $p $((10*p+i)) $f $EPOCHS"; done; done; done
  for f in 0 1 2 3 4; do echo "p0 e160-m0 0 0 $f $((2*EPOCHS))"; done
}
one() {  # dir tag fold_seed seed fold epochs
  mkdir -p .gpu/m/$1
  timeout $(( STOP_AT - ($(date +%s) - T0) )) "$PY" -m twolevel_cli.main train $DATA --folds 5 --only-folds $5 \
    --fold-seed $3 --seed $4 --epochs $6 --device $DEV --save-fold-models .gpu/m/$1/$2 \
    --out .gpu/m/$1/cv-$2-f$5.json --log .gpu/m/$1/cv-$2-f$5.log --quiet > /dev/null 2>&1
}
export -f one; export T0 STOP_AT PY DEV DATA
jobs | xargs -P 16 -L 1 bash -c 'one $0 $1 $2 $3 $4 $5'
echo "[$(( $(date +%s) - T0 )) s] done: $(ls .gpu/m/*/*/fold*.pt | wc -l) fold models, $(ls .gpu/m/*/*.json | wc -l) reports"
tar czf "$OUT/members.tgz" .gpu/m; ls -la "$OUT"
