"""``twolevel-cli train`` with the teachers' outputs stored by ``store_teacher_outputs.py``.

    python scripts/device/stored_teachers.py STORED.pkl PARTITION -- train DATA --folds 5 --fold-seed P \
        --distill-from .gpu/t/emotion --distill-midlevels-from .gpu/t/midlevel --distill-corpus CORPUS ...

The ``--distill-from`` folder must be named ``emotion`` and the ``--distill-midlevels-from`` folder
``midlevel`` (both may be empty): each stands for all the stored teachers of its kind. Everything
else is the real command: the stored outputs replace only the teachers' forward passes
(``twolevel.distill.fold_teachers`` picks the stored fold whose test clips are outside the training
set, as it picks fold models; ``predict_spectrograms`` on a stored teacher returns the stored mean
outputs of the windows asked for, matched by content).
"""
from __future__ import annotations

import contextlib
import pickle
import sys
from pathlib import Path

import numpy as np

import twolevel.distill as distill
from store_teacher_outputs import spec_key


class StoredTeacher:
    """The stored mean outputs of one kind of teacher for one fold: ``(n, 7)`` mid, ``(n, 8)`` emo."""

    def __init__(self, keys, midlevels, emotions):
        self.row = {k: i for i, k in enumerate(keys)}
        self.midlevels, self.emotions = midlevels, emotions


@contextlib.contextmanager
def stored_teachers(stored: dict, partition: int):
    """Within: teacher folders named ``emotion`` / ``midlevel`` stand for ``stored``'s teachers of
    ``partition`` in ``twolevel.distill`` (fold choice and forward passes replaced; nothing else)."""
    folds = stored["partitions"][int(partition)]["folds"]
    original_predict, original_fold_teachers = distill.predict_spectrograms, distill.fold_teachers

    def fold_teachers(member_dirs, train_ids, device="cpu"):
        kind = {Path(d).name for d in member_dirs}
        if len(kind) != 1 or not kind <= {"emotion", "midlevel"}:
            raise SystemExit(f"stored teachers are folders named emotion or midlevel, not {sorted(kind)}")
        train = set(train_ids)
        found = [f for f in folds if not set(f["test_ids"]) & train]
        if len(found) != 1:
            raise LookupError(f"{len(found)} stored folds have test clips outside this training set")
        nan = np.full((len(stored["keys"]), 1), np.nan)
        if kind == {"emotion"}:
            return [StoredTeacher(stored["keys"], nan, found[0]["emotions"])]
        return [StoredTeacher(stored["keys"], found[0]["midlevels"], nan)]

    def predict_spectrograms(model, specs, *args, **kwargs):
        if not isinstance(model, StoredTeacher):
            return original_predict(model, specs, *args, **kwargs)
        rows = [model.row[spec_key(s)] for s in specs]  # KeyError: a window that was not stored
        return model.midlevels[rows], model.emotions[rows]

    distill.fold_teachers, distill.predict_spectrograms = fold_teachers, predict_spectrograms
    try:
        yield
    finally:
        distill.fold_teachers, distill.predict_spectrograms = original_fold_teachers, original_predict


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[3] != "--":
        raise SystemExit(__doc__)
    stored_path, partition, _, *cli_args = sys.argv[1:]
    with open(stored_path, "rb") as f:
        stored = pickle.load(f)
    from twolevel_cli.main import cli
    with stored_teachers(stored, int(partition)):
        cli(args=cli_args, prog_name="twolevel-cli")


if __name__ == "__main__":
    main()
