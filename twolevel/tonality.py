"""Sharper descriptors for the weak concepts: key clarity and modulation, mode, pulse clarity.

The descriptor targets of :mod:`twolevel.targets` (version 1) ask the right questions but answer
tonal stability, minorness and rhythm stability weakly (the model learns them to r 0.24, 0.18
and 0.26). These answer them from representations closer to the question:

- **key clarity** and **modulation**: a constant-Q chroma (pitch classes resolved at every
  octave, unlike an STFT chroma at 2048 samples), key-profile correlations over 4 s windows
  every 2 s, how clearly each window's best key beats its runner-up, and how often the best
  key changes from one window to the next;
- **minorness**: each window's best minor against its best major correlation, weighted by how
  clear that window's key is (an unclear window says little about mode);
- **pulse clarity**: the largest peak of the onset envelope's autocorrelation over lags of
  40..240 BPM, against that autocorrelation's median (a steady pulse peaks high above its floor);
- **the key of a spectrogram** (:func:`spectrogram_key`): the same key profiles on a chroma folded
  from the model's own log-filterbank bands, for the mode contrast of :mod:`twolevel.augment`,
  which works on cached spectrograms without audio.

Each descriptor is a plain function of a mono signal (float, ``sr`` Hz) returning one float,
tested on synthetic signals in ``tests/test_tonality.py``. They are not (yet) the training targets: see
twolevel/assets/MODEL_CARD.md, "Concept probes".
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

from .signal import SAMPLE_RATE
from .targets import EPS, TEMPO_RANGE_BPM, key_correlations

#: Hop of the constant-Q chroma and the onset envelope, in samples (23 ms at 22,050 Hz).
TONALITY_HOP = 512
#: Length of one key window and the step between windows, in seconds: 4 s holds a cadence
#: (with 2 s windows, a bar on the dominant reads as a key change).
KEY_WINDOW_SECONDS = 4.0
KEY_STEP_SECONDS = 2.0


def cqt_chroma(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Constant-Q chroma ``(12, frames)`` (C first), from C2 over 6 octaves."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    with warnings.catch_warnings():
        # Music without pitched peaks (drums, noise) leaves librosa's tuning estimate no
        # frequencies; it then assumes standard tuning, which is right here, and says so per clip.
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty frequency set")
        return librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=TONALITY_HOP, fmin=librosa.note_to_hz("C2"),
                                          n_octaves=6, bins_per_octave=36)


def window_keys(chroma: np.ndarray, sr: int = SAMPLE_RATE, seconds: float = KEY_WINDOW_SECONDS,
                step_seconds: float = KEY_STEP_SECONDS) -> np.ndarray:
    """Key-profile correlations ``(windows, 24)`` of ``seconds``-long chroma windows every ``step_seconds``.

    Columns: 12 major keys (C..B), then 12 minor keys. Silent windows are dropped.
    """
    win = max(1, int(round(seconds * sr / TONALITY_HOP)))
    step = max(1, int(round(step_seconds * sr / TONALITY_HOP)))
    rows = []
    for s in range(0, max(1, chroma.shape[1] - win + 1), step):
        mean = chroma[:, s:s + win].mean(axis=1)
        if mean.sum() > EPS and mean.std() > EPS:
            rows.append(key_correlations(mean))
    return np.array(rows) if rows else np.zeros((0, 24))


def key_clarity(corr: np.ndarray) -> np.ndarray:
    """Per window: best key correlation minus the best key that is neither it nor its relative.

    The relative major/minor shares the pitch classes, so it is not counted as a rival.
    """
    out = np.zeros(len(corr))
    for w, c in enumerate(corr):
        best = int(np.argmax(c))
        tonic, minor = best % 12, best >= 12
        relative = (tonic - 3) % 12 if minor else 12 + (tonic + 9) % 12
        rivals = np.delete(c, [best, relative])
        out[w] = c[best] - rivals.max()
    return out


def modulation_rate(corr: np.ndarray) -> float:
    """Share of consecutive windows whose best key (relative keys counted as one) differs: 0..1."""
    if len(corr) < 2:
        return 0.0
    best = corr.argmax(axis=1)
    # relative keys as one: minor key m -> its relative major (m + 3)
    major_of = np.where(best >= 12, (best - 12 + 3) % 12, best)
    return float(np.mean(major_of[1:] != major_of[:-1]))


def tonal_stability_v2(y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Key clarity x (1 - modulation rate): high for one clear key, low for unclear or wandering keys."""
    return tonal_stability_of(window_keys(cqt_chroma(y, sr), sr))


def tonal_stability_of(corr: np.ndarray) -> float:
    """:func:`tonal_stability_v2` from the window key correlations ``(windows, 24)`` of :func:`window_keys`."""
    if not len(corr):
        return 0.0
    clarity = float(np.clip(np.mean(corr.max(axis=1)), 0, None))
    return clarity * (1.0 - modulation_rate(corr))


def minorness_v2(y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Clarity-weighted mean over key windows of best minor minus best major correlation."""
    return minorness_of(window_keys(cqt_chroma(y, sr), sr))


def minorness_of(corr: np.ndarray) -> float:
    """:func:`minorness_v2` from the window key correlations ``(windows, 24)`` of :func:`window_keys`."""
    if not len(corr):
        return 0.0
    weight = np.clip(key_clarity(corr), 0, None) + 1e-3
    diff = corr[:, 12:].max(axis=1) - corr[:, :12].max(axis=1)
    return float((weight * diff).sum() / weight.sum())


def onset_autocorrelation(y: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``(bpm, r)``: autocorrelation (lag 0 = 1) of the centred onset envelope at lags of 40..240 BPM."""
    import librosa

    env = librosa.onset.onset_strength(y=np.asarray(y, dtype=np.float32), sr=sr, hop_length=TONALITY_HOP)
    env = env - env.mean()
    ac = np.correlate(env, env, mode="full")[len(env) - 1:]
    if ac[0] <= EPS:
        return np.zeros(0), np.zeros(0)
    ac = ac / ac[0]
    lags = np.arange(1, len(ac))
    bpm = 60.0 * sr / (TONALITY_HOP * lags)
    keep = (bpm >= TEMPO_RANGE_BPM[0]) & (bpm <= TEMPO_RANGE_BPM[1])
    return bpm[keep], ac[1:][keep]


def pulse_clarity(y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Highest autocorrelation peak over 40..240 BPM above the median of that range (0 for no pulse)."""
    _, r = onset_autocorrelation(y, sr)
    if len(r) < 3:
        return 0.0
    peaks = (r[1:-1] > r[:-2]) & (r[1:-1] >= r[2:])
    if not peaks.any():
        return 0.0
    return float(max(0.0, r[1:-1][peaks].max() - np.median(r)))


#: Lowest band pitch (MIDI note number, 57 = A3, 220 Hz) that :func:`spectrogram_chroma` folds:
#: below it the filterbank's bands are single STFT bins 10.8 Hz apart, about a semitone or more.
LOWEST_CHROMA_PITCH = 57.0


@functools.lru_cache(maxsize=1)
def band_pitches() -> np.ndarray:
    """The pitch of each filterbank band's centre, as a (fractional) MIDI note number ``(149,)``
    (cached: do not modify)."""
    from .frontend import band_centre_frequencies

    return 12.0 * np.log2(band_centre_frequencies() / 440.0) + 69.0


def spectrogram_chroma(log_spec: np.ndarray) -> np.ndarray:
    """Chroma ``(12,)`` (C first) of an un-normalised log spectrogram ``(frames, 149)``.

    Each band from :data:`LOWEST_CHROMA_PITCH` up adds its magnitude (``10**s - 1``, summed over
    frames) to the two pitch classes around its centre pitch, split linearly between them.
    """
    pitch = band_pitches()
    keep = pitch >= LOWEST_CHROMA_PITCH
    magnitude = (np.power(10.0, np.asarray(log_spec, dtype=np.float64)[:, keep]) - 1.0).clip(0).sum(axis=0)
    lower = np.floor(pitch[keep])
    upper_share = pitch[keep] - lower
    lower_class = lower.astype(int) % 12
    chroma = np.bincount(lower_class, magnitude * (1 - upper_share), minlength=12)
    return chroma + np.bincount((lower_class + 1) % 12, magnitude * upper_share, minlength=12)


def spectrogram_key(log_spec: np.ndarray) -> tuple[int, bool, float]:
    """``(tonic, minor, mode_clarity)`` of an un-normalised log spectrogram ``(frames, 149)``.

    The best of the 24 key profiles (:func:`~twolevel.targets.key_correlations`) on
    :func:`spectrogram_chroma`: its tonic (0 = C .. 11 = B) and whether it is minor; and how far
    its correlation beats the best key of the other mode (often the relative key, which shares
    its pitch classes), so 0 means the mode is a coin toss.
    """
    corr = key_correlations(spectrogram_chroma(log_spec))
    best = int(np.argmax(corr))
    minor = best >= 12
    other_mode = corr[:12] if minor else corr[12:]
    return best % 12, minor, float(corr[best] - other_mode.max())


#: Name -> function, for probes and comparisons.
TONALITY_DESCRIPTORS = {"tonal_stability": tonal_stability_v2, "minorness": minorness_v2,
                        "rhythm_stability": pulse_clarity}


def tonality_descriptors(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The :data:`TONALITY_DESCRIPTORS` of one signal, by mid-level name; the CQT key analysis of
    tonal stability and minorness is done once for both."""
    keys = window_keys(cqt_chroma(y, sr), sr)
    return {"tonal_stability": tonal_stability_of(keys), "minorness": minorness_of(keys),
            "rhythm_stability": pulse_clarity(y, sr)}
