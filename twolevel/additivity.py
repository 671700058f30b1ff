"""Additivity of the network's response to hidden regions of its input: a training penalty.

A level-2 explanation fits a linear surrogate to the model's outputs over random on/off patterns
of the spectrogram's segments (LIME); its R^2 is how much of the response that linear model
explains. What it cannot explain are interactions: hiding region A changes the output by a
different amount depending on whether region B is hidden too. :func:`additivity_loss` measures
that second difference on random patches and penalises it, so a trained network answers hidden
regions more additively and its explanations fit better.

For one normalised window ``x`` and a random pattern ``z`` (half of a grid of patches shown, as a
LIME sample shows half of the segments), two disjoint sets ``A`` and ``B`` of shown patches give
four inputs, and the interaction of A and B at z is

    f(z) - f(z without A) - f(z without B) + f(z without A and B)

which is 0 for every A, B and z exactly when f is additive over the patches.
"""
from __future__ import annotations

import torch

#: Patches along time and frequency: 16 x 8 patches of about 20 frames (0.63 s) x 19 bands, on the
#: order of the explanation's Felzenszwalb segments (a few hundred per window).
GRID = (16, 8)
#: Share of the grid's patches in each of the sets A and B.
PART = 0.125


def patch_map(frames: int, bands: int, grid: tuple[int, int] = GRID) -> torch.Tensor:
    """int64 ``(frames, bands)``: the id of each cell's patch, ``0 .. grid[0] * grid[1] - 1``."""
    rows = torch.div(torch.arange(frames) * grid[0], frames, rounding_mode="floor")
    cols = torch.div(torch.arange(bands) * grid[1], bands, rounding_mode="floor")
    return rows[:, None] * grid[1] + cols[None, :]


def interaction_inputs(windows: torch.Tensor, gen: torch.Generator, hide_value: float = 0.0,
                       grid: tuple[int, int] = GRID, part: float = PART) -> torch.Tensor:
    """The four inputs of one interaction per window.

    Args:
        windows: ``(n, frames, bands)`` normalised network inputs.
        gen: random generator of the patterns and sets (CPU).
        hide_value: value of a hidden cell (the explanations' ``hide_value``, 0 by default).
        grid: patches along time and frequency.
        part: share of the patches in each of A and B (both taken from the shown patches).

    Returns:
        ``(4n, frames, bands)``: all windows at z, then all without A, without B, without A and B.
    """
    n, frames, bands = windows.shape
    n_patches = grid[0] * grid[1]
    size = max(1, round(part * n_patches))
    shown = torch.zeros(4, n, n_patches)
    for i in range(n):
        order = torch.randperm(n_patches, generator=gen)
        base = order[: n_patches // 2]  # the shown half; A and B are disjoint parts of it
        a, b = base[:size], base[size:2 * size]
        shown[:, i, base] = 1.0
        shown[1, i, a] = 0.0
        shown[2, i, b] = 0.0
        shown[3, i, a] = 0.0
        shown[3, i, b] = 0.0
    cells = patch_map(frames, bands, grid).reshape(-1)
    keep = shown[:, :, cells].reshape(4, n, frames, bands).to(windows.device, windows.dtype)
    return (keep * (windows - hide_value) + hide_value).reshape(4 * n, frames, bands)


def interaction(outputs: torch.Tensor) -> torch.Tensor:
    """``(4n, k)`` outputs of :func:`interaction_inputs` -> ``(n, k)`` interactions of A and B."""
    at_z, without_a, without_b, without_both = outputs.reshape(4, -1, outputs.shape[-1])
    return at_z - without_a - without_b + without_both


def additivity_loss(outputs: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared interaction of ``(4n, k)`` outputs, each output's divided by ``scale`` (its
    target's variance; None: 1), so that it is in target sds squared like the variance-scaled MSE."""
    squared = interaction(outputs) ** 2
    return (squared / scale).mean() if scale is not None else squared.mean()
