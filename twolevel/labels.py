"""Names of the A2Mid2E-Joint model's outputs: 7 mid-level features, 8 emotions.

The order of each list is the order of the model's outputs (paper-facts.md). The signal the model
hears (sample rate, STFT, window, filterbank) is in :mod:`twolevel.signal`.
"""
from __future__ import annotations

MIDLEVEL_NAMES: tuple[str, ...] = (
    "melodiousness",
    "articulation",
    "rhythm_stability",
    "rhythm_complexity",
    "dissonance",
    "tonal_stability",
    "minorness",
)
EMOTION_NAMES: tuple[str, ...] = (
    "valence",
    "energy",
    "tension",
    "anger",
    "fear",
    "happy",
    "sad",
    "tender",
)
TARGET_NAMES: tuple[str, ...] = MIDLEVEL_NAMES + EMOTION_NAMES

def target_index(name: str) -> tuple[str, int]:
    """Return ``("midlevel"|"emotion", index)`` for an output name; ValueError if unknown."""
    if name in MIDLEVEL_NAMES:
        return "midlevel", MIDLEVEL_NAMES.index(name)
    if name in EMOTION_NAMES:
        return "emotion", EMOTION_NAMES.index(name)
    raise ValueError(
        f"unknown target {name!r}: choose one of the mid-level features "
        f"({', '.join(MIDLEVEL_NAMES)}) or emotions ({', '.join(EMOTION_NAMES)})"
    )
