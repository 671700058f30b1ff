#!/bin/bash
# A student whose mid-levels are distilled from an ensemble of 7 students (issue 13; MODEL_CARD.md,
# "Mid-levels distilled from an ensemble of students, and an additivity penalty"):
#
#   scripts/ensemble_student_recipe.sh [OUT.pt]          the final student (default seed 19)
#   STUDENT_SEED=9 ADDITIVITY=5 scripts/ensemble_student_recipe.sh OUT.pt
#
# 1. The 7 members: final students of scripts/distill_recipe.sh (the 4 final teachers, 300 corpus
#    windows, descriptor set v3, rhythm and modulation contrasts), under the seeds, widths and
#    contrast weights below. Each one that exists already is kept (about 17-30 minutes each on one
#    core otherwise).
# 2. The student: the same recipe with the dissonance contrast, its corpus windows learning the
#    members' mean mid-levels (--distill-midlevels-from), and the additivity penalty.
#
# Needs what scripts/distill_recipe.sh needs (the corpus of scripts/corpus_recipe.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-runs/distill}
OUT=${1:-$OUT_DIR/final-ensemble-student.pt}
BASE="--descriptors v3 --rhythm-weight 0.2 --modulation-weight 0.15"
# name | seed | training options beyond BASE (the rhythm weight given last wins)
MEMBERS=(
  "v3both-s9|9|"
  "v3both-s19|19|"
  "v3both-s29|29|"
  "v3both-w0.1875-s9|9|--width 0.1875"
  "v3both-diss0.2-s9|9|--dissonance-weight 0.2"
  "v3both-diss0.2-s19|19|--dissonance-weight 0.2"
  "v3r0.5-diss0.2-s9|9|--rhythm-weight 0.5 --dissonance-weight 0.2"
)
mids=()
for member in "${MEMBERS[@]}"; do
  IFS="|" read -r name seed extra <<< "$member"
  path="$OUT_DIR/final-distilled-$name.pt"
  if [ ! -f "$path" ]; then
    echo "member $name (seed $seed)"
    FINAL=1 STUDENT_SEED="$seed" STUDENT_ARGS="$BASE $extra" scripts/distill_recipe.sh "$path"
  fi
  mids+=(--distill-midlevels-from "$path")
done
echo "student (seed ${STUDENT_SEED:-19}) -> $OUT"
FINAL=1 STUDENT_SEED="${STUDENT_SEED:-19}" \
  STUDENT_ARGS="$BASE --dissonance-weight 0.2 --additivity-weight ${ADDITIVITY:-5} ${mids[*]}" \
  scripts/distill_recipe.sh "$OUT"
