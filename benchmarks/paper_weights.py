"""How close a checkpoint's mid-level -> emotion weights are to the paper's published ones.

    python benchmarks/paper_weights.py [CHECKPOINT ...]      # default: the shipped model

Prints, per checkpoint, the Pearson r between its 8 x 7 weight matrix and the published matrix
of A2Mid2E-Joint (../shared/docs/paper-facts.md, copied below as data), and the share of the
published weights with |w| >= 0.2 whose sign it shares. The published model learned its mid-level
layer from human annotations; ours from signal descriptors, so agreement is partial by design.
"""
from __future__ import annotations

import sys

import numpy as np

from twolevel.checkpoint import default_model_path, load_checkpoint
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES

# Published weights (Chowdhury et al. 2019): one row per mid-level, columns in EMOTION_NAMES order.
PUBLISHED = {
    "melodiousness": [.48, .10, -.36, -.14, -.39, -.01, .01, .47],
    "articulation": [-.04, .44, .24, .25, .01, .18, -.54, -.20],
    "rhythm_complexity": [.27, .28, .38, .11, .11, .37, .11, -.03],
    "rhythm_stability": [.06, .04, -.30, -.21, -.24, -.16, .36, .08],
    "dissonance": [-.31, .03, .05, .18, .57, -.46, -.14, .01],
    "tonal_stability": [.19, -.26, .21, -.19, .24, .42, .10, .37],
    "minorness": [-.01, -.17, .47, .15, .28, -.41, .27, -.01],
}


def published_matrix() -> np.ndarray:
    """``(8 emotions, 7 mid-levels)`` in the model's label order."""
    return np.array([PUBLISHED[m] for m in MIDLEVEL_NAMES], dtype=float).T


def agreement(weights: np.ndarray, reference: np.ndarray, threshold: float = 0.2) -> dict:
    big = np.abs(reference) >= threshold
    return {"r": float(np.corrcoef(weights.ravel(), reference.ravel())[0, 1]),
            "sign_agreement": float(np.mean(np.sign(weights[big]) == np.sign(reference[big]))),
            "n_cells": int(big.sum())}


if __name__ == "__main__":
    assert len(EMOTION_NAMES) == 8
    for path in sys.argv[1:] or [str(default_model_path())]:
        model = load_checkpoint(path, device="cpu")
        a = agreement(model.emotion.weight.detach().cpu().numpy(), published_matrix())
        print(f"{model.model_version}: r = {a['r']:.2f} with the published weights; "
              f"sign agrees on {a['sign_agreement']:.0%} of the {a['n_cells']} published weights with |w| >= 0.2")
