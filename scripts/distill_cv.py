"""Cross-validate a distilled student (twolevel/distill.py) on the partition its teachers share.

The teachers are cross-validation runs made with ``twolevel-cli train --folds 5 --fold-seed S
--seed M --save-fold-models DIR_M``; the student uses the same ``--fold-seed S`` so each fold's
teachers never saw its test clips. Unrated items are corpus windows (scripts/fetch_debian_audio.py).

    python scripts/distill_cv.py ../shared/data/soundtracks-set1 --teachers runs/ens-p0/m0 runs/ens-p0/m1 \\
        --corpus cache/debian-audio/corpus --items 210 --fold-seed 0 --seed 10 --out runs/distill.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from twolevel.corpus import corpus_training_set
from twolevel.data import load_soundtracks
from twolevel.distill import distilling
from twolevel.training import TrainConfig, cross_validate, format_cv_table, inner_folds_for, soundtracks_training_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--teachers", nargs="+", type=Path, required=True, help="folders with fold<F>.pt")
    parser.add_argument("--corpus", type=Path, required=True, help="built corpus folder (windows.npz)")
    parser.add_argument("--items", type=int, default=None, help="corpus windows per fold (default: all)")
    parser.add_argument("--fold-seed", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0, help="the student's seed")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(seed=args.seed)
    data = soundtracks_training_set(load_soundtracks(args.dataset_dir))
    extra = distilling(args.teachers, corpus_training_set(args.corpus), args.items, seed=args.seed)
    log_file = open(args.log, "a") if args.log else None

    def log(line: str) -> None:
        if log_file is not None:
            log_file.write(line + "\n")
            log_file.flush()

    results = cross_validate(data, cfg, args.folds, results_path=args.out, extra_train=extra, log=log,
                             inner_folds=inner_folds_for(args.folds, args.val_fraction), fold_seed=args.fold_seed)
    results["distillation"] = {"teachers": [str(t) for t in args.teachers], "corpus": str(args.corpus),
                               "items": args.items}
    args.out.write_text(json.dumps(results, indent=1))
    print(format_cv_table(results))


if __name__ == "__main__":
    main()
