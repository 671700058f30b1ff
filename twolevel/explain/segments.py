"""Segmentation of the spectrogram into the "super-pixels" LIME switches on and off.

Felzenszwalb's graph-based segmentation (scikit-image) on the model's input spectrogram
scaled by its maximum absolute value, with the paper's scale 25 and min_size 40 (about 300
segments for a 10 s window).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.segmentation import felzenszwalb

#: The paper's parameters (paper-facts.md); sigma is scikit-image's default (the paper sets none).
SCALE = 25.0
MIN_SIZE = 40
SIGMA = 0.8


@dataclass(frozen=True)
class Segmentation:
    """A segment map over a ``(frames, bands)`` spectrogram.

    Attributes:
        labels: int64 ``(frames, bands)``; segment ids ``0 .. n_segments - 1``, every id used.
        scale, min_size, sigma: the Felzenszwalb parameters that produced it.
    """

    labels: np.ndarray
    scale: float = SCALE
    min_size: int = MIN_SIZE
    sigma: float = SIGMA

    @property
    def n_segments(self) -> int:
        return int(self.labels.max()) + 1

    def sizes(self) -> np.ndarray:
        """Pixels (time-frequency cells) per segment, ``(n_segments,)``."""
        return np.bincount(self.labels.ravel(), minlength=self.n_segments)

    def mask(self, segment_ids) -> np.ndarray:
        """Boolean ``(frames, bands)``: True on the given segments (an empty list gives all False)."""
        chosen = np.zeros(self.n_segments, dtype=bool)
        chosen[np.asarray(list(segment_ids), dtype=np.int64)] = True
        return chosen[self.labels]

    def parameters(self) -> dict:
        return {"method": "felzenszwalb", "scale": self.scale, "min_size": self.min_size, "sigma": self.sigma,
                "image": "model input spectrogram / max|spectrogram|"}


def consecutive_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber any integer label image to ids ``0 .. n - 1`` in order of first value (no gaps)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def segment_spectrogram(spectrogram: np.ndarray, scale: float = SCALE, min_size: int = MIN_SIZE,
                        sigma: float = SIGMA) -> Segmentation:
    """Felzenszwalb segments of a spectrogram.

    Args:
        spectrogram: ``(frames, bands)`` float, the model's (normalised) input.
        scale, min_size, sigma: Felzenszwalb parameters (defaults: the paper's).

    Returns:
        :class:`Segmentation` with labels starting at 0.
    """
    spec = np.asarray(spectrogram, dtype=np.float64)
    peak = float(np.max(np.abs(spec)))
    image = spec / peak if peak > 0 else spec
    labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size, channel_axis=None)
    return Segmentation(consecutive_labels(labels), scale=scale, min_size=min_size, sigma=sigma)
