"""Level 1 of the explanation: emotion <- mid-level, read exactly off the linear layer.

For one prediction, the effect of mid-level feature j on emotion e is ``W[e, j] * mid[j]``;
effects of one emotion sum to that emotion's output minus its bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import EMOTION_NAMES, MIDLEVEL_NAMES


def effects(weight: np.ndarray, midlevels: np.ndarray) -> np.ndarray:
    """Contributions ``W[e, j] * mid[..., j]``.

    Args:
        weight: ``(8, 7)`` emotion-layer weights.
        midlevels: ``(..., 7)`` mid-level values (any leading batch shape).

    Returns:
        ``(..., 8, 7)`` effects.
    """
    return np.asarray(weight) * np.asarray(midlevels)[..., None, :]


@dataclass(frozen=True)
class Effects:
    """The effects of one prediction.

    Attributes:
        contributions: ``(8, 7)`` weight x mid-level value (rows: emotions, columns: mid-levels).
        bias: ``(8,)`` bias of the emotion layer.
    """

    contributions: np.ndarray
    bias: np.ndarray

    @classmethod
    def from_layer(cls, weight: np.ndarray, bias: np.ndarray, midlevels: np.ndarray) -> "Effects":
        return cls(contributions=effects(weight, midlevels), bias=np.asarray(bias, dtype=np.float64))

    @property
    def totals(self) -> np.ndarray:
        """``(8,)`` emotion outputs: contributions summed plus bias."""
        return self.contributions.sum(axis=1) + self.bias

    def top_midlevels(self, emotion: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` mid-levels with the largest absolute effect on ``emotion``."""
        row = self.contributions[EMOTION_NAMES.index(emotion)]
        order = np.argsort(-np.abs(row))[:k]
        return [(MIDLEVEL_NAMES[j], float(row[j])) for j in order]

    @classmethod
    def from_dict(cls, data: dict) -> "Effects":
        """Inverse of :meth:`to_dict` (e.g. for effects returned by the server)."""
        contributions = np.array([[data[e]["contributions"][m] for m in MIDLEVEL_NAMES] for e in EMOTION_NAMES])
        return cls(contributions=contributions, bias=np.array([data[e]["bias"] for e in EMOTION_NAMES]))

    def to_dict(self) -> dict:
        return {
            e: {
                "contributions": {m: float(self.contributions[i, j]) for j, m in enumerate(MIDLEVEL_NAMES)},
                "bias": float(self.bias[i]),
                "total": float(self.totals[i]),
            }
            for i, e in enumerate(EMOTION_NAMES)
        }


def corpus_effects(weight: np.ndarray, midlevels: np.ndarray) -> dict:
    """Summary of effects over many predictions.

    Args:
        weight: ``(8, 7)``; midlevels: ``(n_clips, 7)``.

    Returns:
        dict with ``effects`` ``(n_clips, 8, 7)`` and its ``mean``, ``std``, ``min``, ``max`` over clips.
    """
    eff = effects(weight, np.atleast_2d(midlevels))
    return {"effects": eff, "mean": eff.mean(0), "std": eff.std(0), "min": eff.min(0), "max": eff.max(0)}
