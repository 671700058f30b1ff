"""Feature selection: keep the segments whose surrogate weight is both large and certain.

A segment is kept when ``p / |weight| < ratio`` (the paper: ratio 1e-6, which kept 30 to 60 of
about 300 segments). Kept segments with positive weight form the positive explanation (they
raise the output), those with negative weight the negative one. Nothing kept is a valid answer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..options import default

#: The paper's threshold on p-value / |weight| (one place: :class:`twolevel.options.ExplainOptions`).
DEFAULT_RATIO = default("ratio")


@dataclass(frozen=True)
class Selection:
    """The segments selected for one output.

    Attributes:
        output: output name (a mid-level or an emotion).
        positive, negative: segment ids, sorted by decreasing |weight|.
        ratio: the threshold used.
        role: ``"target"`` for the output asked for, ``"via_midlevel"`` for a mid-level traced
            on behalf of an emotion target.
        effect: for ``"via_midlevel"``, that mid-level's effect (weight x value) on the emotion.
    """

    output: str
    positive: list[int]
    negative: list[int]
    ratio: float
    role: str = "target"
    effect: float | None = None
    faithfulness: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.positive and not self.negative

    @property
    def selected(self) -> list[int]:
        return self.positive + self.negative

    @property
    def signed(self) -> set[tuple[int, int]]:
        """``{(segment id, +1 or -1)}``: what signed overlaps compare (:func:`signed_segments`)."""
        return signed_segments(self.positive, self.negative)

    def to_dict(self) -> dict:
        return {"output": self.output, "role": self.role, "effect": self.effect, "ratio": self.ratio,
                "positive": list(self.positive), "negative": list(self.negative), "empty": self.empty,
                "faithfulness": self.faithfulness}

    @classmethod
    def from_dict(cls, data: dict) -> "Selection":
        return cls(output=data["output"], positive=[int(i) for i in data["positive"]],
                   negative=[int(i) for i in data["negative"]], ratio=float(data["ratio"]),
                   role=data.get("role", "target"), effect=data.get("effect"),
                   faithfulness=dict(data.get("faithfulness") or {}))


def select_segments(coef: np.ndarray, pvalues: np.ndarray, ratio: float = DEFAULT_RATIO) -> tuple[list[int], list[int]]:
    """Segments with ``p / |w| < ratio``, split by the sign of ``w``.

    Args:
        coef, pvalues: ``(k,)`` surrogate weights and p-values of one output.
        ratio: threshold.

    Returns:
        ``(positive_ids, negative_ids)``, each sorted by decreasing ``|w|``; either may be empty.
    """
    coef = np.asarray(coef, dtype=np.float64)
    pvalues = np.asarray(pvalues, dtype=np.float64)
    magnitude = np.abs(coef)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(magnitude > 0, pvalues / magnitude, np.inf)
    kept = np.isfinite(score) & (score < ratio)
    order = np.argsort(-magnitude, kind="stable")
    positive = [int(i) for i in order if kept[i] and coef[i] > 0]
    negative = [int(i) for i in order if kept[i] and coef[i] < 0]
    return positive, negative


def jaccard(a, b) -> float:
    """Jaccard overlap ``|a & b| / |a | b|`` of two id collections; 1.0 when both are empty."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def signed_segments(positive: Sequence[int], negative: Sequence[int]) -> set[tuple[int, int]]:
    """``{(segment id, +1)}`` for ``positive`` and ``{(segment id, -1)}`` for ``negative``: a selection as
    :func:`jaccard` compares it when a segment that flips sign counts as a change."""
    return {(int(i), 1) for i in positive} | {(int(i), -1) for i in negative}


def selection_stability(selections: list[dict]) -> dict:
    """Mean pairwise Jaccard overlap of repeated selections of one output (e.g. different seeds).

    Args:
        selections: dicts with ``positive`` and ``negative`` id lists (:meth:`Selection.to_dict`).

    Returns:
        ``{"positive", "negative", "signed", "pairs"}``; ``signed`` compares (id, sign) pairs.
    """
    pairs = [(i, j) for i in range(len(selections)) for j in range(i + 1, len(selections))]
    if not pairs:
        return {"positive": 1.0, "negative": 1.0, "signed": 1.0, "pairs": 0}

    mean = lambda f: float(np.mean([f(selections[i], selections[j]) for i, j in pairs]))  # noqa: E731
    return {
        "positive": mean(lambda a, b: jaccard(a["positive"], b["positive"])),
        "negative": mean(lambda a, b: jaccard(a["negative"], b["negative"])),
        "signed": mean(lambda a, b: jaccard(signed_segments(a["positive"], a["negative"]),
                                            signed_segments(b["positive"], b["negative"]))),
        "pairs": len(pairs),
    }
