"""How well LIME's linear surrogate fits a model: mean weighted R^2 over the 15 outputs.

    python benchmarks/surrogate_fit.py CHECKPOINT [CHECKPOINT ...]

For each checkpoint, explains the target ``energy`` on the first 10 s window of 12 Soundtracks
clips (every 30th excerpt present in ../shared) with 1,000 perturbations and no resynthesis,
and prints the mean surrogate R^2 over all 15 outputs, per clip and overall. A higher R^2 means
the model's response to hidden segments is closer to additive, so the selected segments say
more about it. Quality, not speed: this is a measurement script, not a pytest benchmark.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from twolevel.explain import explain
from twolevel.predict import TwoLevelModel

AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "soundtracks-set1" / "audio"
CLIP_NUMBERS = range(1, 360, 30)


def surrogate_r2(checkpoint: str, n_samples: int = 1000) -> tuple[str, np.ndarray]:
    """``(model_version, (clips,) mean R^2 over the 15 outputs)``."""
    model = TwoLevelModel.load(checkpoint, device="cpu")
    clips = [AUDIO / f"{n:03d}.mp3" for n in CLIP_NUMBERS if (AUDIO / f"{n:03d}.mp3").is_file()]
    per_clip = [np.nanmean(explain(model, model.load_audio(c), target="energy", n_samples=n_samples,
                                   resynthesis=False).surrogate.r2) for c in clips]
    return model.model_version, np.array(per_clip)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        version, r2 = surrogate_r2(path)
        print(f"{version}: mean surrogate R^2 {r2.mean():.3f} over {len(r2)} clips; per clip {np.round(r2, 2).tolist()}",
              flush=True)
