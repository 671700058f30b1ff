"""The mid -> emotion layer fitted by least squares (``TrainConfig.emotion_layer``).

Gradient descent trains the emotion layer jointly with the network, through every window crop and
teacher label. Once the network is fixed, the layer that best maps the clip-level mid-levels to the
ratings has a closed form: least squares over the rated clips, each clip's mid-levels taken as
``predict`` takes them (the mean over its 10 s windows). In cross-validation that fit scored
+0.010 to +0.015 average r over the trained layer on 157 fold models (MODEL_CARD.md). The result is
still one linear layer, so level-1 explanations stay exact.

``prior`` and ``shrinkage`` pull the fit towards another layer (the trained one): a ridge penalty
that keeps most of the gain while leaving the weights the data barely determine where training put
them (fewer weights against the ratings than a plain fit gives; MODEL_CARD.md).

``signs`` bounds each weight to one side of zero, as ``level1_signs="ratings"`` does during
training, so that no weight contradicts the association of its mid-level's targets with its
emotion's ratings (least squares on correlated mid-levels otherwise gives suppressor weights).

``contrast`` (:class:`LayerContrast`) asks the layer to turn pairs whose emotion change is known by
construction into changes of the right sign: a squared hinge on each pair's change, e.g. mode
twins (:func:`twolevel.augment.mode_pair`), whose major twin must read happier and less sad than
its minor one (:func:`mode_contrast`). It is musical knowledge the 300 ratings hold only weakly,
given as data the network itself reads, so the layer learns it from what the mid-levels show of
mode rather than from a sign forced on one weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The emotions a mode contrast constrains and the sign their change from minor to major must have.
MODE_DIRECTIONS = {"happy": +1, "valence": +1, "sad": -1}
#: Default margin of a contrast pair's emotion change, in rating/10 units (0.1 on the 10-point scale).
CONTRAST_MARGIN = 0.01


@dataclass(frozen=True)
class LayerContrast:
    """Pairs of inputs whose emotion change is known by construction, for :func:`least_squares_layer`.

    Attributes:
        deltas: ``(pairs, mid-levels)``: the mid-levels of each pair's second member minus its first.
        directions: ``(emotions,)`` in {-1, 0, +1}: the sign each emotion's change must have (0: free).
        weight: weight of the penalty, ``weight * mean_pairs sum_emotions max(0, margin - s_e w_e . d)^2``,
            against the mean squared error over the clips.
        margin: how large each constrained change should be, in rating/10 units.
    """

    deltas: np.ndarray
    directions: np.ndarray
    weight: float = 1.0
    margin: float = CONTRAST_MARGIN

    def __post_init__(self):
        deltas = np.asarray(self.deltas, dtype=np.float64)
        directions = np.asarray(self.directions)
        if deltas.ndim != 2 or not len(deltas) or not np.isfinite(deltas).all():
            raise ValueError(f"contrast deltas must be a finite (pairs >= 1, mid-levels) array, got {deltas.shape}")
        if directions.ndim != 1 or not np.isin(directions, (-1, 0, 1)).all():
            raise ValueError("contrast directions must be (emotions,) in {-1, 0, +1}")
        if not (self.weight >= 0 and np.isfinite(self.weight)) or not (self.margin >= 0 and np.isfinite(self.margin)):
            raise ValueError(f"contrast weight and margin must be numbers >= 0, got {self.weight}, {self.margin}")
        object.__setattr__(self, "deltas", deltas)
        object.__setattr__(self, "directions", directions.astype(int))

    def satisfied(self, weight: np.ndarray) -> np.ndarray:
        """``(pairs,)`` whether every constrained emotion of each pair changes with its sign under ``weight``."""
        signed = (self.deltas @ np.asarray(weight).T) * self.directions
        return (signed[:, self.directions != 0] > 0).all(axis=1)


def mode_contrast(minor_mids: np.ndarray, major_mids: np.ndarray, emotion_names, weight: float = 1.0,
                  margin: float = CONTRAST_MARGIN) -> LayerContrast:
    """The :class:`LayerContrast` of mode twins: ``(pairs, mid-levels)`` mid-levels of the minor and
    the major twin of each pair; happy and valence must rise from minor to major, sad must fall."""
    directions = np.array([MODE_DIRECTIONS.get(name, 0) for name in emotion_names])
    return LayerContrast(np.asarray(major_mids) - np.asarray(minor_mids), directions, weight, margin)


def least_squares_layer(mids: np.ndarray, ratings: np.ndarray, signs: np.ndarray | None = None,
                        prior: np.ndarray | None = None, shrinkage: float = 0.0,
                        contrast: LayerContrast | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (emotions, mid-levels), bias (emotions,))`` minimising the mean squared error of
    ``mids @ weight.T + bias`` against ``ratings``, plus ``shrinkage * ||weight - prior||^2``, plus
    ``contrast``'s squared hinge.

    Args:
        mids: ``(clips, mid-levels)`` clip-level mid-level outputs.
        ratings: ``(clips, emotions)`` targets (the ratings / 10); every value finite.
        signs: ``(emotions, mid-levels)`` in {-1, 0, +1}: weight ``(e, m)`` is kept >= 0 where +1,
            <= 0 where -1, free where 0. None: all free (ordinary least squares).
        prior: ``(emotions, mid-levels)`` weights the penalty pulls towards (default zeros); the bias
            is never penalised.
        shrinkage: weight of that penalty against the mean squared error (0: none). Per clip, so
            that its strength does not change with the number of clips.
        contrast: pairs whose emotion changes must have given signs (:class:`LayerContrast`); None
            or weight 0: none. Solved exactly: the hinge is quadratic on the pairs it is active on,
            so the fit is repeated with those pairs as extra rows until that set stops changing.
    """
    mids = np.asarray(mids, dtype=np.float64)
    ratings = np.asarray(ratings, dtype=np.float64)
    if mids.ndim != 2 or ratings.ndim != 2 or len(mids) != len(ratings):
        raise ValueError(f"mids {mids.shape} and ratings {ratings.shape} must be (clips, n) with the same clips")
    if len(mids) <= mids.shape[1]:
        raise ValueError(f"{len(mids)} clips cannot fit a layer over {mids.shape[1]} mid-levels and a bias")
    if not (np.isfinite(mids).all() and np.isfinite(ratings).all()):
        raise ValueError("mids and ratings must be finite")
    if shrinkage < 0 or not np.isfinite(shrinkage):
        raise ValueError(f"shrinkage must be a number >= 0, got {shrinkage}")
    n_emotions, n_mids = ratings.shape[1], mids.shape[1]
    prior = np.zeros((n_emotions, n_mids)) if prior is None else np.asarray(prior, dtype=np.float64)
    if prior.shape != (n_emotions, n_mids):
        raise ValueError(f"prior {prior.shape} must be (emotions, mid-levels) = {(n_emotions, n_mids)}")
    design = np.c_[mids, np.ones(len(mids))]
    targets = ratings
    if shrinkage > 0:  # the penalty as extra rows: sum of squares / n + shrinkage * ||w - prior||^2
        root = np.sqrt(shrinkage * len(mids))
        design = np.r_[design, np.c_[root * np.eye(n_mids), np.zeros(n_mids)]]
        targets = np.r_[ratings, root * prior.T]
    if signs is not None and np.any(signs):
        signs = np.asarray(signs)
        if signs.shape != (n_emotions, n_mids):
            raise ValueError(f"signs {signs.shape} must be (emotions, mid-levels) = {(n_emotions, n_mids)}")
    else:
        signs = None
    if contrast is not None and contrast.weight > 0 and np.any(contrast.directions):
        if contrast.deltas.shape[1] != n_mids or len(contrast.directions) != n_emotions:
            raise ValueError(f"contrast deltas {contrast.deltas.shape} and directions {contrast.directions.shape} "
                             f"must match {n_mids} mid-levels and {n_emotions} emotions")
    else:
        contrast = None
    if signs is None and contrast is None:
        solution = np.linalg.lstsq(design, targets, rcond=None)[0]  # (mid-levels + 1, emotions)
        return solution[:-1].T.copy(), solution[-1].copy()
    weight = np.zeros((n_emotions, n_mids))
    bias = np.zeros(n_emotions)
    for e in range(n_emotions):
        weight[e], bias[e] = _fit_one_emotion(design, targets[:, e], None if signs is None else signs[e],
                                              contrast, e, len(mids))
    return weight, bias


def shrinkage_prior(mids: np.ndarray, ratings: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                    shrinkage: float) -> np.ndarray:
    """The ``prior`` a :func:`least_squares_layer` fit with ``shrinkage`` > 0 was pulled towards, from
    the fit itself: its optimality condition ``X^T (X beta - y) + n * shrinkage * (w - prior) = 0``
    solved for ``prior`` (exact for an unbounded fit on the same ``mids`` and ``ratings``). For
    re-fitting a model's layer (a trained run keeps its fitted layer, not the one it was pulled to).
    """
    if not shrinkage > 0:
        raise ValueError(f"a prior is recoverable only from a shrunk fit (shrinkage > 0), got {shrinkage}")
    mids = np.asarray(mids, dtype=np.float64)
    design = np.c_[mids, np.ones(len(mids))]
    beta = np.r_[np.asarray(weight, dtype=np.float64).T, np.asarray(bias, dtype=np.float64)[None]]
    gradient = design.T @ (design @ beta - np.asarray(ratings, dtype=np.float64))
    return np.asarray(weight, dtype=np.float64) + gradient[:-1].T / (shrinkage * len(mids))


def _fit_one_emotion(design: np.ndarray, target: np.ndarray, signs: np.ndarray | None,
                     contrast: LayerContrast | None, e: int, n_clips: int) -> tuple[np.ndarray, float]:
    """One emotion's ``(weight (mid-levels,), bias)``: least squares on ``design`` (clip rows and any
    shrinkage rows), bounded by ``signs``, with ``contrast``'s hinge rows for emotion ``e``."""
    from scipy.optimize import lsq_linear

    n_mids = design.shape[1] - 1
    low = np.r_[np.where(signs > 0, 0.0, -np.inf), -np.inf] if signs is not None else None
    high = np.r_[np.where(signs < 0, 0.0, np.inf), np.inf] if signs is not None else None

    def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if signs is None:
            return np.linalg.lstsq(a, b, rcond=None)[0]
        return lsq_linear(a, b, bounds=(low, high), method="bvls").x

    x = solve(design, target)
    direction = 0 if contrast is None else int(contrast.directions[e])
    if direction == 0:
        return x[:-1], float(x[-1])
    # each pair's hinge, sum over pairs * weight / pairs, per clip like the mean squared error:
    # rows root * s * d_i (no bias) with target root * margin, where the hinge is active
    root = np.sqrt(contrast.weight * n_clips / len(contrast.deltas))
    rows = np.c_[root * direction * contrast.deltas, np.zeros(len(contrast.deltas))]
    active = None
    for _ in range(100):  # the active set settles in a few rounds; 100 is a guard, not a tolerance
        now = direction * (contrast.deltas @ x[:-1]) < contrast.margin
        if active is not None and np.array_equal(now, active):
            break
        active = now
        x = solve(np.r_[design, rows[active]], np.r_[target, np.full(int(active.sum()), root * contrast.margin)])
    return x[:-1], float(x[-1])
