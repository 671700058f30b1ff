"""Do a model's level-1 weights say what the data say? Sign agreement of the emotion layer.

    python benchmarks/level1_signs.py [CHECKPOINT ...] [--json]      (default: the shipped model)

Level 1 explains an emotion as ``weight x mid-level value``. With correlated mid-levels a least-
squares layer can give a mid-level a weight of the opposite sign to its association with the
emotion (a suppressor): the shipped model's valence weight on minorness is positive although its
minorness output correlates -0.56 with the valence ratings, so its level-1 explanation says "more
minor, more positive". For each checkpoint this script predicts the 300 Soundtracks clips in
../shared (in-sample for a model trained on them: this is about what the explanations say, not
accuracy) and reports:

* ``flips``: emotion-layer weights whose sign contradicts the Spearman r between that mid-level's
  output and that emotion's ratings, among the pairs with ``|r| >= 0.15``;
* the minorness column: each emotion's ``weight x sd(minorness output)`` and that r, which decide
  whether a major/minor pair moves happy, valence and sad the right way (the mode probes).

Quality, not speed: a measurement script, not a pytest benchmark.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from twolevel.checkpoint import load_checkpoint
from twolevel.data import load_soundtracks
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.training import cached_spectrograms, predict_spectrograms

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "soundtracks-set1"
MIN_ABS_R = 0.15


def sign_report(checkpoint: str | None, specs, ratings: np.ndarray) -> dict:
    """Sign agreement of one checkpoint's emotion layer with the ratings (see the module doc)."""
    net = load_checkpoint(checkpoint, device="cpu")
    mid, _ = predict_spectrograms(net, specs)
    weight = net.emotion.weight.detach().double().numpy()  # (8, 7)
    r = np.array([[stats.spearmanr(mid[:, m], ratings[:, e])[0] for m in range(len(MIDLEVEL_NAMES))]
                  for e in range(len(EMOTION_NAMES))])
    strong = np.abs(r) >= MIN_ABS_R
    flips = strong & (np.sign(weight) != np.sign(r))
    minor = MIDLEVEL_NAMES.index("minorness")
    return {"model": getattr(net, "model_version", str(checkpoint)), "checkpoint": checkpoint or "shipped",
            "flips": int(flips.sum()), "strong_pairs": int(strong.sum()),
            "flipped": [[EMOTION_NAMES[e], MIDLEVEL_NAMES[m], round(float(r[e, m]), 2)]
                        for e, m in zip(*np.nonzero(flips))],
            "minorness_effect_per_sd": {e: round(float(weight[i, minor] * mid[:, minor].std()), 4)
                                        for i, e in enumerate(EMOTION_NAMES)},
            "minorness_r": {e: round(float(r[i, minor]), 2) for i, e in enumerate(EMOTION_NAMES)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="*", help="checkpoints (default: the shipped model)")
    ap.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    args = ap.parse_args()
    ds = load_soundtracks(DATA)
    specs = cached_spectrograms(ds.audio_paths)
    for ckpt in args.checkpoints or [None]:
        rep = sign_report(ckpt, specs, ds.ratings)
        if args.json:
            print(json.dumps(rep))
            continue
        print(f"{rep['checkpoint']} ({rep['model']}): {rep['flips']} of {rep['strong_pairs']} weights with "
              f"|r| >= {MIN_ABS_R} contradict the ratings")
        print("  minorness: weight x sd  " + "  ".join(f"{e} {v:+.3f}" for e, v in rep["minorness_effect_per_sd"].items()))
        print("             r(ratings)   " + "  ".join(f"{e} {v:+.2f}" for e, v in rep["minorness_r"].items()))


if __name__ == "__main__":
    main()
