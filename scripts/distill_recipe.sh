#!/bin/bash
# The distillation recipe (issue 13, MODEL_CARD.md "Ensembles, weight averaging and distillation"):
# 4 ensemble members, then a compact two-level student taught by them on unrated corpus windows.
#
#   PARTITIONS="2 3 4" scripts/distill_recipe.sh        cross-validate on those partitions
#   FINAL=1 scripts/distill_recipe.sh [OUT.pt]           the final model: teachers and student on all clips
#   STUDENT_ARGS="--modulation-weight 0.5" ...           more training options for the student only
#   FINAL=1 STUDENT_SEED=19 scripts/distill_recipe.sh OUT  the final student under another seed (default 9)
#   FINAL=1 TEACHER_SEEDS="0 1" TEACHERS_ONLY=1 ...      only those final teachers (to train them two at a time)
#   MEMBER_ARGS="--swa-epochs 20" MEMBER_TAG=swa- ...   more training options for the members; their
#                                                        folders and reports are named MEMBER_TAG m<seed>
#   LONG_MEMBERS=2 ...                                   also N teachers of the long schedule (LONG_ARGS,
#                                                        default 160 epochs, 10 % validating, early stopping
#                                                        after 50 epochs, the best-validation state kept):
#                                                        members Lm<10P+4..>, final teachers final-teacher-L-s<0..>
#
# Partition P: members --seed 10P+0..3 with --fold-seed P, student --seed 10P+9; each run resumes
# (--resume), so an interrupted recipe continues where it stopped. Needs the corpus of
# scripts/corpus_recipe.sh (cache/debian-audio/corpus). One core per run: about 25 minutes per
# cross-validation on these CPUs. STUDENT_TAG names the student's report (cv-student$TAG.json), so a
# student with other STUDENT_ARGS does not resume from another's.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/soundtracks-set1}
CORPUS=${CORPUS:-cache/debian-audio/corpus}
BIN=${BIN:-.venv/bin}
LONG_MEMBERS=${LONG_MEMBERS:-0}
LONG_ARGS=${LONG_ARGS:---epochs 160 --patience 50}
OUT_DIR=${OUT_DIR:-runs/distill}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TWOLEVEL_THREADS=${TWOLEVEL_THREADS:-1}
[ -f "$CORPUS/windows.npz" ] || { echo "no corpus at $CORPUS: run scripts/corpus_recipe.sh first" >&2; exit 2; }
mkdir -p "$OUT_DIR"
if [ -n "${FINAL:-}" ]; then
  OUT=${1:-$OUT_DIR/final-distilled.pt}
  teachers=()
  for m in ${TEACHER_SEEDS:-0 1 2 3}; do
    teacher="$OUT_DIR/final-teacher-${MEMBER_TAG:-}s$m"
    [ -f "$teacher.pt" ] || $BIN/twolevel-cli train "$DATA" --seed "$m" --val-fraction 0 ${MEMBER_ARGS:-} \
        --out "$teacher.pt" --log "$teacher.log" --quiet
    teachers+=(--distill-from "$teacher.pt")
  done
  [ -z "${TEACHERS_ONLY:-}" ] || exit 0
  for ((m = 0; m < LONG_MEMBERS; m++)); do
    teacher="$OUT_DIR/final-teacher-L-s$m"
    [ -f "$teacher.pt" ] || $BIN/twolevel-cli train "$DATA" --seed "$m" $LONG_ARGS --out "$teacher.pt" --log "$teacher.log" --quiet
    teachers+=(--distill-from "$teacher.pt")
  done
  # the last epoch, not a pick on 30 validation clips (which chose epoch 14 in the first attempt)
  $BIN/twolevel-cli train "$DATA" --seed "${STUDENT_SEED:-9}" --val-fraction 0 "${teachers[@]}" --distill-corpus "$CORPUS" \
      --distill-items 300 ${STUDENT_ARGS:-} --out "$OUT" --log "${OUT%.pt}.log" --quiet
  exit 0
fi
for p in ${PARTITIONS:-0 1 2 3 4}; do
  dir="$OUT_DIR/p$p"
  mkdir -p "$dir"
  teachers=()
  for i in 0 1 2 3; do
    m=$((10 * p + i))
    member="${MEMBER_TAG:-}m$m"
    $BIN/twolevel-cli train "$DATA" --folds 5 --fold-seed "$p" --seed "$m" ${MEMBER_ARGS:-} --save-fold-models "$dir/$member" \
        --out "$dir/cv-$member.json" --log "$dir/cv-$member.log" --quiet --resume
    teachers+=(--distill-from "$dir/$member")
  done
  for ((i = 4; i < 4 + LONG_MEMBERS; i++)); do
    m=$((10 * p + i))
    $BIN/twolevel-cli train "$DATA" --folds 5 --fold-seed "$p" --seed "$m" $LONG_ARGS --save-fold-models "$dir/Lm$m" \
        --out "$dir/cv-Lm$m.json" --log "$dir/cv-Lm$m.log" --quiet --resume
    teachers+=(--distill-from "$dir/Lm$m")
  done
  $BIN/twolevel-cli train "$DATA" --folds 5 --fold-seed "$p" --seed $((10 * p + 9)) "${teachers[@]}" \
      --distill-corpus "$CORPUS" --distill-items 210 ${STUDENT_ARGS:-} --out "$dir/cv-student${STUDENT_TAG:-}.json" \
      --log "$dir/cv-student${STUDENT_TAG:-}.log" \
      --quiet --resume
  $BIN/python benchmarks/ensemble_cv.py "$DATA" "$dir/${MEMBER_TAG:-}"m* > "$dir/ensemble${MEMBER_TAG:+-${MEMBER_TAG%-}}.txt"
done
$BIN/python benchmarks/cv_report.py --pool "$OUT_DIR"/p*/cv-*.json
