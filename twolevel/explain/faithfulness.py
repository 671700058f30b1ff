"""Faithfulness of a selection: the deletion check.

If the positive segments really are what raises the output, hiding them must lower it more
than hiding the same number of segments picked at random (averaged over several random draws).
Symmetrically, hiding the negative segments should raise it more than random segments do.
Everything is measured with the same network, input and hide value as the explanation.
"""
from __future__ import annotations

import numpy as np

from ..options import default
from .sampling import run_perturbations



def deletion_switches(n_segments: int, hidden: list[int], n_random: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 rows: all ones, the selection hidden, then ``n_random`` rows hiding as many random segments."""
    rows = np.ones((2 + n_random, n_segments), dtype=np.uint8)
    rows[1, hidden] = 0
    for r in range(n_random):
        rows[2 + r, rng.choice(n_segments, size=len(hidden), replace=False)] = 0
    return rows


def deletion_check(network, spectrogram: np.ndarray, segment_map: np.ndarray, n_segments: int,
                   selections: dict, output_index: dict, hide_value: float = 0.0,
                   n_random: int = default("faithfulness_draws"), seed: int = 0,
                   batch_size: int = default("batch_size"), precision: str = default("precision")) -> dict:
    """Run the deletion check for several selections in one batched pass.

    Args:
        network: as for :func:`twolevel.explain.sampling.run_perturbations`.
        spectrogram, segment_map: ``(frames, bands)`` input and segment ids.
        n_segments: number of segments.
        selections: output name -> ``(positive_ids, negative_ids)``.
        output_index: output name -> column of the network's concatenated ``(mid, emo)`` outputs.
        hide_value: as used for the explanation.
        n_random: random draws per check.
        seed: seeds the random segment draws.
        batch_size, precision: as for :func:`~twolevel.explain.sampling.run_perturbations`.

    Returns:
        output name -> ``{"positive": {...}, "negative": {...}}``, each with ``n_hidden``,
        ``change`` (output after hiding minus before), ``random_change_mean``, ``random_change_std``,
        ``passed`` (positive: change < random mean; negative: change > random mean); or
        ``{"skipped": "empty selection"}`` for a side with no segments.
    """
    rng = np.random.default_rng(seed)
    blocks, plan = [], []
    for name, sides in selections.items():
        for side, ids in zip(("positive", "negative"), sides):
            if ids:
                plan.append((name, side, len(ids), sum(len(b) for b in blocks)))
                blocks.append(deletion_switches(n_segments, list(ids), n_random, rng))
    result = {name: {side: {"skipped": "empty selection"} for side in ("positive", "negative")}
              for name in selections}
    if not blocks:
        return result
    outputs = run_perturbations(network, spectrogram, segment_map, np.concatenate(blocks), hide_value, batch_size,
                                precision=precision)
    for name, side, n_hidden, at in plan:
        column = outputs[at:at + 2 + n_random, output_index[name]]
        change = float(column[1] - column[0])
        random_change = column[2:] - column[0]
        mean = float(random_change.mean())
        result[name][side] = {
            "n_hidden": n_hidden,
            "change": change,
            "random_change_mean": mean,
            "random_change_std": float(random_change.std()),
            "n_random": n_random,
            "passed": bool(change < mean) if side == "positive" else bool(change > mean),
        }
    return result
