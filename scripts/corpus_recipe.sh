#!/bin/bash
# One command for the corpus recipe (issue 13): fetch and cache freely licensed Debian music,
# pre-train the trunk + mid-level head on its descriptor targets, then train jointly on
# Soundtracks from that start. Usage: scripts/corpus_recipe.sh [DATA] [OUT.pt]
# With FOLDS=5 SEEDS="0 1 2" it cross-validates instead (runs/cv-pretrained-seedS.json).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/soundtracks-set1}
OUT=${2:-runs/final-pretrained.pt}
BIN=${BIN:-.venv/bin}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TWOLEVEL_THREADS=${TWOLEVEL_THREADS:-1}
mkdir -p runs
$BIN/python scripts/fetch_debian_audio.py --max-windows "${MAX_WINDOWS:-2}" --max-tracks "${MAX_TRACKS:-25}"
PRE=runs/pretrained-w0.125-e${PRE_EPOCHS:-15}.pt
[ -f "$PRE" ] || $BIN/python scripts/pretrain_corpus.py cache/debian-audio/corpus --out "$PRE" \
    --epochs "${PRE_EPOCHS:-15}" --log "${PRE%.pt}.log"
if [ -n "${FOLDS:-}" ]; then
  for s in ${SEEDS:-0 1 2}; do
    $BIN/twolevel-cli train "$DATA" --folds "$FOLDS" --seed "$s" --init-from "$PRE" \
        --out runs/cv-pretrained-seed$s.json --log runs/cv-pretrained-seed$s.log --quiet --resume
  done
else
  $BIN/twolevel-cli train "$DATA" --init-from "$PRE" --out "$OUT" --log "${OUT%.pt}.log"
fi
