#!/bin/bash
# Device run (session 17): the GPU check, then the concept trunk C of the three-trunk candidate G3,
# cross-validated: one fold per process, 16 at once. C is the shipped recipe's student (4 teachers,
# 274 corpus windows, v3 descriptors, additivity 5, 80 epochs, seed 10P+9) whose corpus windows also
# learn the mean mid-levels of the two shipped-recipe students of the fold (seeds 10P+9, 10P+8, last
# epoch), with the modulation contrast (--modulation-weight 0.15). The teachers do not travel: their
# outputs on the corpus windows, computed on the CPU (store_teacher_outputs.py), do (.gpu/stored.pkl),
# and stored_teachers.py trains with them (same targets as the teachers' folders give: checked equal).
#   JOBS="1:0 1:1 ..." bash scripts/device/trunk_students.sh      (partition:fold; DRY=1: CPU, 1 epoch)
# The same folds on the CPU (session 17's other 9 ran so, with ../shared and cache/ in place of .gpu/):
#   DEV=cpu NPAR=2 NO_CHECK=1 STOP_AT=99999 PY=.venv/bin/python JOBS="0:0 0:1 ..." bash scripts/device/trunk_students.sh
# Needs .gpu/data (less original/), .gpu/corpus (windows.npz.xz), .gpu/cache/desc, .gpu/stored.pkl, .whl.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/../.."
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"; DEV=${DEV:-cuda}; EPOCHS=80; NPAR=${NPAR:-16}
T0=$(date +%s); STOP_AT=${STOP_AT:-575}; el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
JOBS=${JOBS:-"1:0 1:1 1:2 1:3 1:4 2:0 2:1 2:2 2:3 2:4 3:0 3:1 3:2 3:3 3:4 4:0"}
[ "${DRY:-0}" = 1 ] && { DEV=cpu; EPOCHS=1; NPAR=2; JOBS="1:0"; }
. "$HERE/setup.sh"
CORPUS=.gpu/corpus; mkdir -p .gpu/t/emotion .gpu/t/midlevel .gpu/c
[ -f $CORPUS/windows.npz ] || xz -T4 -dk $CORPUS/windows.npz.xz || { echo "no corpus" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
cache_spectrograms
[ "${NO_CHECK:-0}" = 1 ] || gpu_check $([ "${DRY:-0}" = 1 ] && echo --samples 700 --paper-width 0.125 || echo --paper-width 1.0)
wait; el "spectrograms: $(ls $TWOLEVEL_CACHE/spec | wc -l) cached; C folds"
export OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1 PYTHONPATH=$PYTHONPATH:$HERE
one() {  # partition fold
  local P=$1 F=$2 S=$((10 * $1 + 9)) D=.gpu/c/p$1; mkdir -p $D
  local left=$(( STOP_AT - ($(date +%s) - T0) )); [ $left -gt 60 ] && [ ! -f $D/c$S/fold$F-last.pt ] || return 0
  timeout $left "$PY" "$HERE/stored_teachers.py" .gpu/stored.pkl $P -- train $DATA --folds 5 --only-folds $F \
    --fold-seed $P --seed $S --epochs $EPOCHS --device $DEV --distill-from .gpu/t/emotion \
    --distill-midlevels-from .gpu/t/midlevel --distill-corpus $CORPUS --distill-items 274 --descriptors v3 \
    --additivity-weight 5 --modulation-weight 0.15 --save-fold-models $D/c$S --out $D/cv-c$S-f$F.json \
    --log $D/cv-c$S-f$F.log --quiet > $D/cv-c$S-f$F.out 2>&1
  echo "p$P f$F rc $? at $(( $(date +%s) - T0 )) s"
}
export -f one; export T0 STOP_AT PY DEV DATA EPOCHS CORPUS HERE
for j in $JOBS; do echo "${j%:*} ${j#*:}"; done | xargs -P $NPAR -L 1 bash -c 'one $0 $1'
el "C folds: $(ls .gpu/c/p*/c*/fold*-last.pt 2>/dev/null | wc -l)"
tail -n 3 .gpu/c/p*/cv-*.log 2>/dev/null | tail -n 8
tar czf "$OUT/trunk-c.tgz" --exclude="*.pt.last" .gpu/c; ls -la "$OUT"
