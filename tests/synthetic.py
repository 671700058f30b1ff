"""Random training sets for tests that train: spectrograms of 200-420 frames, uniform targets."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.signal import N_BANDS, SAMPLE_RATE as SR
from twolevel.training import TrainingSet


def synthetic_set(n: int = 6, seed: int = 0, prefix: str = "", rated: bool = True) -> TrainingSet:
    """``n`` clips ``f"{prefix}{i:03d}"`` of random ``(frames, 149)`` spectrograms, categories A/B
    alternating; emotions uniform in [0.1, 0.9] (all NaN when not ``rated``), mid-levels in [0, 1]."""
    rng = np.random.default_rng(seed)
    specs = [rng.random((int(rng.integers(200, 420)), N_BANDS), dtype=np.float32) for _ in range(n)]
    emo = rng.uniform(0.1, 0.9, (n, len(EMOTION_NAMES))) if rated else np.full((n, len(EMOTION_NAMES)), np.nan)
    mid = rng.uniform(0, 1, (n, len(MIDLEVEL_NAMES)))
    return TrainingSet([f"{prefix}{i:03d}" for i in range(n)], specs, emo, mid, ["AB"[i % 2] for i in range(n)])


def chord_spectrogram(tonic: int, minor: bool, frames: int = 313, seed: int = 0) -> np.ndarray:
    """Un-normalised log spectrogram ``(frames, 149)`` of a held triad (tonic, third, fifth) in every
    octave from A3 up, over faint noise: the bands within a quarter tone of a chord tone are loud."""
    from twolevel.tonality import LOWEST_CHROMA_PITCH, band_pitches

    degrees = (0, 3 if minor else 4, 7)
    pitch = band_pitches()
    # semitones from each band to the nearest octave of each chord tone
    distance = np.abs((pitch - tonic - np.array(degrees)[:, None] + 6) % 12 - 6)
    loud = (distance.min(axis=0) < 0.3) & (pitch >= LOWEST_CHROMA_PITCH)
    rng = np.random.default_rng(seed)
    spec = 0.05 * rng.random((frames, N_BANDS), dtype=np.float32)
    spec[:, loud] += 1.0
    return spec


def tonal_set(n: int = 6, seed: int = 0) -> TrainingSet:
    """:func:`synthetic_set` with held triads instead of noise, in a major or minor key by turns."""
    base = synthetic_set(n, seed)
    specs = [chord_spectrogram((5 * i) % 12, bool(i % 2), len(s), seed + i) for i, s in enumerate(base.specs)]
    return TrainingSet(base.ids, specs, base.emotions, base.midlevels, base.categories)


def write_soundtracks_layout(root: Path, n: int = 6) -> Path:
    """``n`` 11 s MP3 clips (tones of different pitch and pulse) with random ratings, in the
    published Soundtracks layout (``mean_ratings_set1.csv`` with a BOM and CRLF, ``audio/NNN.mp3``)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    rows = []
    for k in range(n):
        number = f"{k + 1:03d}"
        t = np.arange(int(11.0 * SR)) / SR
        f0 = 110 * 2 ** (k / 3)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sign(np.sin(2 * np.pi * (1 + k) * t)))
        y += 0.02 * rng.standard_normal(len(t))
        sf.write(root / "audio" / f"{number}.mp3", y.astype(np.float32), SR, format="MP3")
        ratings = ",".join(f"{v:.2f}" for v in rng.uniform(1, 9, 8))
        rows.append(f"{number},{ratings},{'HAPPY' if k % 2 else 'SAD'}")
    text = "\r\n".join(["number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET", *rows]) + "\r\n"
    (root / "mean_ratings_set1.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    return root
