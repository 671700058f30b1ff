#!/bin/bash
# Device run: the shipped recipe's students cross-validated on the GPU, several seeds on one
# partition with every fold's model kept (fold<F>-last.pt: the state the recipe ships), so that
# students averaged as one two-level model (mean mid-levels, one linear layer; up to 4 trunks fit the
# 0.25 GMAC budget) can be scored on the CPU: benchmarks/ensemble_cv.py DATA S1 S2 ... --state last
# ("mid mean"). The teachers are trained first, there (the recipe's 4 members of the partition, seeds
# 10P+0..3): the corpus and the dataset leave no room in what travels for teachers made here.
#   P=0 SEEDS="9 8 7 6 5 4" bash .gpu/students.sh       DRY=1: a small CPU dry run
# Needs in .gpu/corpus: windows.npz.xz (xz -9e of cache/debian-audio/corpus/windows.npz, 21.4 MB),
# index.json and raw-1-v3.npz; with .gpu/data (less original/), .whl and the tree: 65.1 MB of the
# 64 MiB (67.1 MB) that travels (scripts/device/README.md says how to prepare it).
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"; DEV=cuda; EPOCHS=80; P=${P:-0}; SEEDS=${SEEDS:-"9 8 7 6 5 4"}; NPAR=16; NPAR_T=20; FOLDS="0 1 2 3 4"
T0=$(date +%s); STOP_AT=${STOP_AT:-560}; el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
[ "${DRY:-0}" = 1 ] && { DEV=cpu; EPOCHS=1; SEEDS="9"; NPAR=2; NPAR_T=2; FOLDS="0"; }
. "$HERE/setup.sh"
CORPUS=${CORPUS:-.gpu/corpus}
[ -f $CORPUS/windows.npz ] || xz -dk $CORPUS/windows.npz.xz || { echo "no corpus in $CORPUS" >&2; exit 2; }
cache_spectrograms; wait; el "spectrograms cached"
export OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1
M=.gpu/m/p$P; mkdir -p $M
teacher() {  # member fold
  local left=$(( STOP_AT - ($(date +%s) - T0) )); [ -f $M/m$1/fold$2.pt ] && return 0
  timeout $left "$PY" -m twolevel_cli.main train $DATA --folds 5 --only-folds $2 --fold-seed $P --seed $1 --epochs $EPOCHS \
    --device $DEV --save-fold-models $M/m$1 --out $M/cv-m$1-f$2.json --log $M/cv-m$1-f$2.log --quiet > /dev/null 2>&1
}
student() {  # seed fold
  local left=$(( STOP_AT - ($(date +%s) - T0) )); [ $left -gt 30 ] && [ ! -f $M/s$1/fold$2-last.pt ] || return 0
  local t=(); for i in 0 1 2 3; do t+=(--distill-from $M/m$((10 * P + i))); done
  timeout $left "$PY" -m twolevel_cli.main train $DATA --folds 5 --only-folds $2 --fold-seed $P --seed $1 --epochs $EPOCHS \
    --device $DEV "${t[@]}" --distill-corpus $CORPUS --distill-items 274 --descriptors v3 --additivity-weight 5 \
    --save-fold-models $M/s$1 --out $M/cv-s$1-f$2.json --log $M/cv-s$1-f$2.log --quiet > /dev/null 2>&1
}
export -f teacher student; export T0 STOP_AT PY DEV DATA EPOCHS P M CORPUS
for i in 0 1 2 3; do for f in $FOLDS; do echo "$((10 * P + i)) $f"; done; done | xargs -P $NPAR_T -L 1 bash -c 'teacher $0 $1'
el "teachers: $(ls $M/m*/fold[0-9].pt 2>/dev/null | wc -l) fold models"
for s in $SEEDS; do for f in $FOLDS; do echo "$s $f"; done; done | xargs -P $NPAR -L 1 bash -c 'student $0 $1'
el "students: $(ls $M/s*/fold*-last.pt 2>/dev/null | wc -l) fold models"
tar czf "$OUT/students-p$P.tgz" --exclude="*.pt.last" $M; ls -la "$OUT"
