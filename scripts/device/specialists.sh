#!/bin/bash
# Device run (session 24): minorness-specialist students for issue 13 (MODEL_CARD.md, "A specialist trunk"),
# one seed per process, all at once. The rated clips (31 MB) and the twin corpus (40 MB compressed) do not
# travel together under the 64 MiB limit, so the work takes two calls on one warm machine (30 s idle ends it:
# send the second call at once):
#   STAGE=stash  (carry .whl .gpu/data .gpu/cache): copies the clips and their descriptors to $STASH, outside
#                the checkout, caches their spectrograms, and runs the GPU check (STOP_AT=170: CUDA tests,
#                explanations, trunk layouts, sweep; 147 s on the H200);
#   STAGE=train  (carry .whl .gpu/corpus .gpu/teachers): SEEDS at once, each stopped at STOP_AT seconds;
#                results in $OUT/students.tgz (checkpoints, logs). Ten students of 80 epochs took 462 s.
# The recipe is session 22's mt (4 final teachers, v3 descriptors, additivity 5, 514 corpus items, mode-twin
# contrast 0.3); on the CPU it is scripts/distill_recipe.sh with FINAL=1 CORPUS=cache/corpus-twins-fp.
# Prepare, in the repository root (.gpu/ is ignored through .git/info/exclude):
#   mkdir -p .gpu/data .gpu/cache .gpu/corpus .gpu/teachers
#   cp -r ../shared/data/soundtracks-set1 .gpu/data/ && rm -rf .gpu/data/soundtracks-set1/original
#   cp -r ~/.cache/twolevel/desc .gpu/cache/ && cp runs/distill/final-teacher-s[0-3].pt .gpu/teachers/
#   cp cache/corpus-twins-fp/{index.json,raw-1-v3.npz} .gpu/corpus/
#   .venv/bin/python -c "from twolevel.corpus import record_mode_twins as r; print(r('.gpu/corpus'))"  # 120 window pairs
#   xz -9 -c cache/corpus-twins-fp/windows.npz > .gpu/corpus/windows.npz.xz
# EXTRA_ARGS adds training options, e.g. "--join twolevel/assets/twolevel-default.pt --join-midlevel minorness"
# (specialists trained for their place in the shipped model, session 24's experiment 23).
# DRY=1 STASH=DIR PY=.venv/bin/python runs STAGE=train here on the CPU for one epoch (DIR holding data/,
# cache/ and a file named ready).
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/../.."
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
PY=${PY:-python3}; STASH=${STASH:-/var/tmp/twolevel-stash}; OUT=${OUT:-/tmp/specialists-out}; mkdir -p "$OUT"
case "${STAGE:-}" in
stash)
  mkdir -p $STASH/cache && cp -r .gpu/data $STASH/ && cp -r .gpu/cache/desc $STASH/cache/
  . "$HERE/setup.sh"
  export TWOLEVEL_CACHE=$STASH/cache
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  for i in 0 1 2 3 4 5 6 7; do
    OMP_NUM_THREADS=1 "$PY" -c "
from pathlib import Path; from twolevel.training import cached_spectrograms
cached_spectrograms(sorted(Path('$STASH/data/soundtracks-set1/audio').glob('*.mp3'))[$i::8])" &
  done
  STOP_AT=${STOP_AT:-170} OMP_NUM_THREADS=4 bash benchmarks/gpu_check.sh "$OUT/check" 2>&1 | grep -v '^|'
  wait
  el "spectrograms cached: $(ls $STASH/cache/spec | wc -l)"
  touch $STASH/ready ;;
train)
  DEV=cuda; EPOCHS=80; STOP_AT=${STOP_AT:-540}; SEEDS=${SEEDS:-"201 202 203 204 205 206 207 208 209 210"}
  [ "${DRY:-0}" = 1 ] && { DEV=cpu; EPOCHS=1; }
  [ -f $STASH/ready ] || { echo "no stash at $STASH: a fresh machine (STAGE=stash did not run on it)"; exit 3; }
  . "$HERE/setup.sh"
  export TWOLEVEL_CACHE=$STASH/cache OMP_NUM_THREADS=1 TWOLEVEL_THREADS=1
  [ -f .gpu/corpus/windows.npz ] || xz -T8 -dk .gpu/corpus/windows.npz.xz || { echo "no corpus"; exit 2; }
  mkdir -p .gpu/st; el "$(echo $SEEDS | wc -w) students on $DEV"
  one() {
    local s=$1 left=$(( STOP_AT - ($(date +%s) - T0) ))
    timeout $left "$PY" -c "import sys; from twolevel_cli.main import cli; cli(args=sys.argv[1:], prog_name='twolevel-cli')" \
      train $STASH/data/soundtracks-set1 --seed $s --val-fraction 0 --epochs $EPOCHS --device $DEV \
      --distill-from .gpu/teachers/final-teacher-s0.pt --distill-from .gpu/teachers/final-teacher-s1.pt \
      --distill-from .gpu/teachers/final-teacher-s2.pt --distill-from .gpu/teachers/final-teacher-s3.pt \
      --distill-corpus .gpu/corpus --distill-items 514 --descriptors v3 --additivity-weight 5 --mode-twin-weight 0.3 \
      ${EXTRA_ARGS:-} --out .gpu/st/mt-s$s.pt --log .gpu/st/mt-s$s.log --quiet > .gpu/st/mt-s$s.out 2>&1
    echo "seed $s rc $? at $(( $(date +%s) - T0 )) s, epochs $(wc -l < .gpu/st/mt-s$s.log 2>/dev/null)"
  }
  for s in $SEEDS; do one $s & done
  wait
  el "students: $(ls .gpu/st/*.pt 2>/dev/null | wc -l)"
  tail -qn 1 .gpu/st/*.out
  tar czf "$OUT/students.tgz" --exclude="*.pt.last" .gpu/st ;;
*) echo "STAGE=stash or STAGE=train (see the top of $0)" >&2; exit 2 ;;
esac
