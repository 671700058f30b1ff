"""Level-1 pictures: per-prediction effects plots and the model's global weights.

All functions write a PNG and return its path. Figures are drawn on matplotlib's Agg canvas
directly (``Figure`` + ``FigureCanvasAgg``), so importing this module switches no backend and
works without a display.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .effects import Effects
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES

POSITIVE, NEGATIVE, NEUTRAL = "#2f7ed8", "#d9534f", "#7f7f7f"


def pretty_label(name: str) -> str:
    """``rhythm_stability`` -> ``rhythm stability`` for axis labels and titles."""
    return name.replace("_", " ")


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure of ``figsize`` inches on its own Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (creating the folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def effects_plot(effects: Effects, path: str | os.PathLike, title: str = "") -> Path:
    """One panel per emotion: bars of weight x mid-level value, the bias, and the total.

    Args:
        effects: the :class:`Effects` of one prediction.
        path: PNG to write.
        title: e.g. the clip's name.
    """
    fig = new_figure((15, 7.5))
    axes = fig.subplots(2, 4, sharex=True)
    labels = [pretty_label(m) for m in MIDLEVEL_NAMES] + ["bias", "= total"]
    lim = max(1e-6, float(np.max(np.abs(np.concatenate([effects.contributions.ravel(), effects.bias, effects.totals])))))
    for i, (ax, emotion) in enumerate(zip(axes.ravel(), EMOTION_NAMES)):
        values = np.concatenate([effects.contributions[i], [effects.bias[i], effects.totals[i]]])
        colors = [POSITIVE if v >= 0 else NEGATIVE for v in values[:-2]] + [NEUTRAL, "black"]
        y = np.arange(len(values))[::-1]
        ax.barh(y, values, color=colors)
        ax.axvline(0, color="black", lw=0.6)
        ax.axhline(1.5, color="#bbbbbb", lw=0.6, ls="--")
        ax.set_yticks(y, labels if i % 4 == 0 else [""] * len(labels))
        ax.set_xlim(-lim * 1.15, lim * 1.15)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))  # no labels colliding between panels
        ax.set_title(f"{pretty_label(emotion)} = {effects.totals[i]:.3f}")
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("effect on emotion (weight x mid-level value)")
    fig.suptitle(f"Why these emotions: mid-level effects{' - ' + title if title else ''}", fontsize=13)
    fig.tight_layout()
    return save_figure(fig, path)


def weights_heatmap(weight: np.ndarray, bias: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Heatmap of the ``(8, 7)`` mid -> emotion weights (rows mid-levels, columns emotions), bias as a last row."""
    data = np.vstack([np.asarray(weight).T, np.asarray(bias)[None]])
    lim = float(np.max(np.abs(data))) or 1.0
    fig = new_figure((9, 6))
    ax = fig.subplots()
    im = ax.imshow(data, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(EMOTION_NAMES)), [pretty_label(e) for e in EMOTION_NAMES], rotation=30, ha="right")
    ax.set_yticks(range(len(MIDLEVEL_NAMES) + 1), [pretty_label(m) for m in MIDLEVEL_NAMES] + ["bias"])
    ax.axhline(len(MIDLEVEL_NAMES) - 0.5, color="black", lw=1)
    for (r, c), v in np.ndenumerate(data):
        ax.text(c, r, f"{v:+.2f}", ha="center", va="center", fontsize=8,
                color="white" if abs(v) > 0.6 * lim else "black")
    fig.colorbar(im, ax=ax, label="weight (emotion per unit of mid-level)")
    ax.set_title(title or "Mid-level -> emotion weights of the explainable layer")
    fig.tight_layout()
    return save_figure(fig, path)


def corpus_effects_plot(effects: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Distribution of effects over a corpus: one box plot panel per emotion.

    Args:
        effects: ``(n_clips, 8, 7)`` from :func:`twolevel.effects.corpus_effects`.
    """
    fig = new_figure((15, 7.5))
    axes = fig.subplots(2, 4, sharex=True, sharey=True)
    for i, (ax, emotion) in enumerate(zip(axes.ravel(), EMOTION_NAMES)):
        ax.boxplot([effects[:, i, j] for j in range(len(MIDLEVEL_NAMES))], orientation="horizontal",
                   tick_labels=[pretty_label(m) for m in MIDLEVEL_NAMES])
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(pretty_label(emotion))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title or f"Effects over {effects.shape[0]} clips", fontsize=13)
    fig.tight_layout()
    return save_figure(fig, path)
