"""How well LIME's linear surrogate fits a model: mean weighted R^2 over the 15 outputs.

    python benchmarks/surrogate_fit.py CHECKPOINT [CHECKPOINT ...] [--design antithetic]

For each checkpoint, explains the target ``energy`` on the first 10 s window of 12 Soundtracks
clips (every 30th excerpt present in ../shared) with 1,000 perturbations and no resynthesis,
and prints the mean surrogate R^2 over all 15 outputs, per clip and overall. A higher R^2 means
the model's response to hidden segments is closer to additive, so the selected segments say
more about it. Quality, not speed: this is a measurement script, not a pytest benchmark.

The perturbations are LIME's independent draws unless ``--design antithetic``: that is how the
model card's R^2 figures were measured (an in-sample R^2 at 1,000 samples for ~250 weights also
credits the surrogate with fitting part of the network's non-additive response, which antithetic
pairs keep out of it, so the two designs' figures are not comparable).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from twolevel.explain import explain
from twolevel.options import SAMPLING_DESIGNS
from twolevel.predict import TwoLevelModel

AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "soundtracks-set1" / "audio"
CLIP_NUMBERS = range(1, 360, 30)


def surrogate_r2(checkpoint: str, n_samples: int = 1000, design: str = "independent") -> tuple[str, np.ndarray]:
    """``(model_version, (clips,) mean R^2 over the 15 outputs)``."""
    model = TwoLevelModel.load(checkpoint, device="cpu")
    clips = [AUDIO / f"{n:03d}.mp3" for n in CLIP_NUMBERS if (AUDIO / f"{n:03d}.mp3").is_file()]
    per_clip = [np.nanmean(explain(model, model.load_audio(c), target="energy", n_samples=n_samples,
                                   design=design, resynthesis=False).surrogate.r2) for c in clips]
    return model.model_version, np.array(per_clip)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="mean LIME surrogate R^2 of checkpoints on 12 Soundtracks clips")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--design", choices=SAMPLING_DESIGNS, default="independent",
                        help="how perturbations are drawn (default: %(default)s, as the model card measured)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.checkpoints:
        version, r2 = surrogate_r2(path, design=args.design)
        print(f"{version} ({args.design} design): mean surrogate R^2 {r2.mean():.3f} over {len(r2)} clips; per clip {np.round(r2, 2).tolist()}",
              flush=True)
