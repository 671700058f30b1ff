"""How much would an ensemble (a teacher for distillation) gain over one model, on the same folds?

Members are cross-validation runs that share one partition (``--fold-seed``) and differ in
``--seed``, each run with ``--save-fold-models DIR`` (``DIR/fold<F>.pt``). For every fold this
scores, on that fold's test clips (Pearson r over clips, averaged over the 8 emotions):

* ``member``: each member alone (mean over members), i.e. what a single model reaches;
* ``output mean``: the mean of the members' emotion outputs: a teacher, not a two-level model;
* ``mid mean``: the members' mid-level outputs averaged, then their emotion layers averaged,
  ``mean(W) @ mean(mid) + mean(b)``: still 7 mid-levels and one linear layer (K trunks cost K x).

A member trained with ``--swa-epochs N`` saves its weight average as ``fold<F>.pt`` and its
best-validation state as ``fold<F>-best.pt``; ``--state best`` scores the latter, so one run gives
both ensembles.

Usage::

    python benchmarks/ensemble_cv.py ../shared/data/soundtracks-set1 runs/ens-p0/m0 runs/ens-p0/m1 ... [--json]
    python benchmarks/ensemble_cv.py DATA runs/distill/p0/swa-m* --state best
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from twolevel.checkpoint import load_checkpoint
from twolevel.data import load_soundtracks
from twolevel.training import pearson, predict_spectrograms, soundtracks_training_set


def fold_model_path(member_dir: Path, fold: int, state: str = "saved") -> Path:
    """The fold's checkpoint: ``fold<F>.pt`` (what training kept), with ``state="best"`` the
    best-validation state ``fold<F>-best.pt`` where a weight-averaged run saved one, with
    ``state="last"`` the last epoch's state ``fold<F>-last.pt`` (what the shipped recipes keep)."""
    other = member_dir / f"fold{fold}-{state}.pt"
    return other if state in ("best", "last") and other.is_file() else member_dir / f"fold{fold}.pt"


def fold_predictions(data, member_dirs: list[Path], fold: int, state: str = "saved") -> tuple[list[int], list[tuple]]:
    """Test clip indices and each member's ``(mid, emo, weight, bias)`` on them."""
    index, outs = None, []
    for d in member_dirs:
        path = fold_model_path(d, fold, state)
        model = load_checkpoint(path, device="cpu")  # its metadata lists the fold's test clips
        ids = list(model.metadata["test_ids"])
        if index is None:
            index = [data.ids.index(i) for i in ids]
        elif ids != [data.ids[i] for i in index]:
            raise SystemExit(f"{path}: other test clips than {member_dirs[0]}; members must share --fold-seed")
        mid, emo = predict_spectrograms(model, [data.specs[i] for i in index])
        w = model.emotion.weight.detach().double().numpy()
        b = model.emotion.bias.detach().double().numpy()
        outs.append((mid, emo, w, b))
    return index, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("members", nargs="+", type=Path, help="folders with fold<F>.pt, one per member")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--state", choices=("saved", "best", "last"), default="saved",
                        help="saved: fold<F>.pt (the weight average of a --swa-epochs run); "
                             "best: fold<F>-best.pt where there is one; last: fold<F>-last.pt where there is one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = soundtracks_training_set(load_soundtracks(args.dataset_dir))
    rows = []
    for f in range(args.folds):
        if not all((d / f"fold{f}.pt").is_file() for d in args.members):
            continue
        index, outs = fold_predictions(data, args.members, f, args.state)
        truth = data.emotions[index]
        member = [float(np.nanmean(pearson(emo, truth))) for _, emo, _, _ in outs]
        output_mean = np.mean([emo for _, emo, _, _ in outs], axis=0)
        mid_mean = np.mean([mid for mid, _, _, _ in outs], axis=0)
        w_mean = np.mean([w for _, _, w, _ in outs], axis=0)
        b_mean = np.mean([b for _, _, _, b in outs], axis=0)
        rows.append({"fold": f, "member": member, "member_mean": float(np.mean(member)),
                     "output_mean": float(np.nanmean(pearson(output_mean, truth))),
                     "mid_mean": float(np.nanmean(pearson(mid_mean @ w_mean.T + b_mean, truth))),
                     "output_mean_per_emotion": pearson(output_mean, truth).round(3).tolist()})
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("member_mean", "output_mean", "mid_mean")}
    if args.json:
        print(json.dumps({"members": [str(m) for m in args.members], "state": args.state, "folds": rows, "summary": summary}, indent=1))
        return
    print(f"{len(args.members)} members, {len(rows)} folds")
    print("fold | members | member mean | output mean | mid mean")
    for r in rows:
        print(f"{r['fold']} | {', '.join(f'{m:.3f}' for m in r['member'])} | {r['member_mean']:.3f} | "
              f"{r['output_mean']:.3f} | {r['mid_mean']:.3f}")
    print(f"mean | | {summary['member_mean']:.3f} | {summary['output_mean']:.3f} | {summary['mid_mean']:.3f}")


if __name__ == "__main__":
    main()
