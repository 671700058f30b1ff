"""Would a least-squares emotion layer beat the trained one? Scored per cross-validation fold model.

For each fold model (``DIR/fold<F>.pt``, or ``fold<F>-last.pt`` with ``--state last``) this scores the
fold's test clips (Pearson r over clips, averaged over the 8 emotions) twice: as trained, and with
its mid -> emotion layer replaced by the least-squares fit of the ratings on the model's clip-level
mid-levels (each clip scored as ``predict`` scores it: the mean over its 10 s windows) of the
fold's other clips (its training and validation clips; never its test clips). The network and
its 7 mid-levels stay as they are, and the refitted model is still one linear layer over them, so
level-1 explanations stay exact.

Usage::

    python benchmarks/refit_emotion_layer.py ../shared/data/soundtracks-set1 runs/distill/p0/m0 runs/distill/p0/m1 [--json]
    python benchmarks/refit_emotion_layer.py DATA runs/distill/p0/avg/s9 --state last [--signs]

The fit is training's own (``twolevel.training.with_fitted_layer``), on the clips training's
``--emotion-layer least-squares`` fits it on in cross-validation (a fold's training and
validation clips), so scoring a fold model here equals training it with that option. ``--signs``
bounds each weight as ``--emotion-layer least-squares-signs`` does.
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import torch

from twolevel.checkpoint import load_checkpoint
from twolevel.data import load_soundtracks
from twolevel.labels import EMOTION_NAMES
from twolevel.training import (level1_sign_mask, pearson, predict_spectrograms, soundtracks_training_set,
                               with_fitted_layer)


@functools.cache
def _training_set(dataset_dir: str, descriptors: str):
    return soundtracks_training_set(load_soundtracks(dataset_dir), descriptors=descriptors)


def refit_scores(dataset, path: Path, signs: bool = False, shrinkage: float = 0.0) -> dict:
    """The fold model at ``path`` on its test clips: ``{"trained", "refitted"}`` average r, and
    ``"refitted_emotions"``: r per emotion of the refitted layer. With ``signs``, the fit keeps each
    weight on the side ``level1_sign_mask`` gives it over the fit's clips (``emotion_layer=
    "least-squares-signs"``); ``shrinkage`` pulls it towards the trained layer (``emotion_layer_shrinkage``)."""
    model = load_checkpoint(path, device="cpu")
    # the sign mask reads the mid-level targets the model was trained on
    data = _training_set(dataset, model.metadata.get("config", {}).get("descriptors", "v1"))
    test = [data.ids.index(i) for i in model.metadata["test_ids"]]
    tested = set(test)
    other = data.subset([i for i in range(len(data.ids)) if i not in tested])
    mids_test, emotions_test = predict_spectrograms(model, [data.specs[i] for i in test])
    # the fit training does (TrainConfig.emotion_layer), on the clips it would fit: the network is untouched
    fitted = with_fitted_layer(model, model.state_dict(), other, level1_sign_mask(other) if signs else None, shrinkage)
    weight, bias = (fitted[k].double().numpy() for k in ("emotion.weight", "emotion.bias"))
    truth = data.emotions[test]
    refitted = pearson(mids_test @ weight.T + bias, truth)
    return {"model": str(path), "trained": float(np.nanmean(pearson(emotions_test, truth))),
            "refitted": float(np.nanmean(refitted)),
            "refitted_emotions": dict(zip(EMOTION_NAMES, map(float, refitted)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("models", nargs="+", type=Path, help="folders with fold<F>.pt (--save-fold-models)")
    parser.add_argument("--state", choices=("saved", "last"), default="saved",
                        help="saved: fold<F>.pt (best validation); last: fold<F>-last.pt (the last epoch)")
    parser.add_argument("--signs", action="store_true",
                        help="bound each weight to the ratings' sign (emotion_layer least-squares-signs)")
    parser.add_argument("--shrinkage", type=float, default=0.0,
                        help="pull the fit towards the trained layer (emotion_layer_shrinkage; 0 = plain fit)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for folder in args.models:
        for f in range(10):
            path = folder / (f"fold{f}-last.pt" if args.state == "last" else f"fold{f}.pt")
            if path.is_file():
                rows.append(refit_scores(args.dataset_dir, path, args.signs, args.shrinkage))
                if not args.json:
                    r = rows[-1]
                    print(f"{path}: {r['trained']:.4f} -> {r['refitted']:.4f} ({r['refitted'] - r['trained']:+.4f})",
                          flush=True)
    gain = np.array([r["refitted"] - r["trained"] for r in rows])
    summary = {"models": len(rows), "trained": float(np.mean([r["trained"] for r in rows])),
               "refitted": float(np.mean([r["refitted"] for r in rows])), "gain": float(gain.mean()),
               "better": int((gain > 0).sum()),
               "refitted_emotions": {e: float(np.mean([r["refitted_emotions"][e] for r in rows])) for e in EMOTION_NAMES}}
    if args.json:
        print(json.dumps({"state": args.state, "signs": args.signs, "shrinkage": args.shrinkage, "folds": rows, "summary": summary}, indent=1))
    else:
        print(f"{summary['models']} fold models: {summary['trained']:.4f} -> {summary['refitted']:.4f} "
              f"({summary['gain']:+.4f}, better in {summary['better']})")


if __name__ == "__main__":
    main()
