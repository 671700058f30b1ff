"""Random training sets for tests that train: spectrograms of 200-420 frames, uniform targets."""
from __future__ import annotations

import numpy as np

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.signal import N_BANDS
from twolevel.training import TrainingSet


def synthetic_set(n: int = 6, seed: int = 0, prefix: str = "", rated: bool = True) -> TrainingSet:
    """``n`` clips ``f"{prefix}{i:03d}"`` of random ``(frames, 149)`` spectrograms, categories A/B
    alternating; emotions uniform in [0.1, 0.9] (all NaN when not ``rated``), mid-levels in [0, 1]."""
    rng = np.random.default_rng(seed)
    specs = [rng.random((int(rng.integers(200, 420)), N_BANDS), dtype=np.float32) for _ in range(n)]
    emo = rng.uniform(0.1, 0.9, (n, len(EMOTION_NAMES))) if rated else np.full((n, len(EMOTION_NAMES)), np.nan)
    mid = rng.uniform(0, 1, (n, len(MIDLEVEL_NAMES)))
    return TrainingSet([f"{prefix}{i:03d}" for i in range(n)], specs, emo, mid, ["AB"[i % 2] for i in range(n)])
