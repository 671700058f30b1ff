"""The descriptor sets a model can learn its mid-levels from.

* ``v1``: :mod:`twolevel.targets` (docs/midlevel-targets.md), the shipped model's targets.
* ``v2``: v1 with tonal stability, minorness and rhythm stability from :mod:`twolevel.tonality`
  (CQT key clarity x (1 - modulation rate), clarity-weighted mode, pulse clarity above the onset
  autocorrelation's median), which order the concept probes with about twice the margin
  (twolevel/assets/MODEL_CARD.md, concept probes).
* ``v3``: v1 with only minorness from :mod:`twolevel.tonality` (clarity-weighted mode). Under v2
  minorness was the one concept that gained (probes 9 -> 12 of 12) while pulse clarity cost rhythm
  stability (6 -> 2 of 12); v3 takes the gain alone.

Its own module because :mod:`twolevel.tonality` builds on :mod:`twolevel.targets`.
"""
from __future__ import annotations

import numpy as np

from . import tonality
from .labels import MIDLEVEL_NAMES
from .signal import SAMPLE_RATE
from .targets import DESCRIPTOR_VERSION
from .targets import raw_descriptors as raw_v1

#: The mid-levels each set takes from :func:`twolevel.tonality.tonality_descriptors` instead of v1.
TONALITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "v1": (),
    "v2": ("tonal_stability", "minorness", "rhythm_stability"),
    "v3": ("minorness",),
}
DESCRIPTOR_SETS = tuple(TONALITY_COLUMNS)


def check_descriptor_set(descriptors: str) -> None:
    """Raise ValueError unless ``descriptors`` names a set of :data:`DESCRIPTOR_SETS`."""
    if descriptors not in DESCRIPTOR_SETS:
        raise ValueError(f"descriptors must be one of {', '.join(DESCRIPTOR_SETS)}, got {descriptors!r}")


def raw_descriptors(y: np.ndarray, sr: int = SAMPLE_RATE, descriptors: str = "v1",
                    v1: np.ndarray | None = None) -> np.ndarray:
    """The 7 raw descriptors of a mono signal from the set ``descriptors``, float64 ``(7,)`` in
    :data:`~twolevel.labels.MIDLEVEL_NAMES` order. ``v1``: the signal's v1 descriptors when
    already known (a cache), so that a later set computes only the columns it replaces."""
    check_descriptor_set(descriptors)
    raw = np.array(v1, dtype=np.float64) if v1 is not None else raw_v1(y, sr)
    if TONALITY_COLUMNS[descriptors]:
        sharper = tonality.tonality_descriptors(y, sr)
        for name in TONALITY_COLUMNS[descriptors]:
            raw[MIDLEVEL_NAMES.index(name)] = sharper[name]
    return raw


def descriptor_cache_key(descriptors: str = "v1") -> int | str:
    """The cache version of a descriptor set. v1 keeps the exact key its caches were written under
    (the integer :data:`~twolevel.targets.DESCRIPTOR_VERSION`: the key hashes its JSON, where 1 and
    "1" differ), so existing caches stay valid."""
    return DESCRIPTOR_VERSION if descriptors == "v1" else f"{DESCRIPTOR_VERSION}-{descriptors}"
