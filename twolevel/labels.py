"""Label names and the signal constants of the A2Mid2E-Joint model.

The order of each list is the order of the model's outputs (paper-facts.md).
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

#: Sample rate the model hears, in Hz.
SAMPLE_RATE = 22_050
#: STFT frame length and hop, in samples (hop 704 = 31.3 frames/s).
N_FFT = 2048
HOP_LENGTH = 704
#: One analysis window: 10 s of audio, 313 spectrogram frames.
WINDOW_SECONDS = 10.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 220,500
WINDOW_FRAMES = 313
#: Log-frequency filterbank: 24 bands per octave from 20 Hz to 16 kHz -> 149 bands.
BANDS_PER_OCTAVE = 24
FMIN_HZ = 20.0
FMAX_HZ = 16_000.0
N_BANDS = 149


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
