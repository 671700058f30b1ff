"""Mid-level training targets from signal descriptors (docs/midlevel-targets.md).

The human mid-level annotations are not available, so each of the 7 mid-level features is
learned from a descriptor that answers the raters' question from the signal:

==================  ==========================================================================
melodiousness       harmonic share of the energy x chroma peakiness x (1 - spectral flatness)
articulation        percussive share of the energy + onset rate (log-scaled)
rhythm_stability    pulse clarity: highest peak of the normalised onset autocorrelation
                    (mean tempogram) between 40 and 240 BPM
rhythm_complexity   entropy of the mean tempogram over the tempo lags of 40..240 BPM
dissonance          Sethares/Plomp-Levelt roughness of the spectral peaks + spectral flatness
tonal_stability     key clarity (best Krumhansl-Kessler correlation of the mean chroma) x share
                    of 2 s windows whose best key is the global key
minorness           best minor-key correlation - best major-key correlation
==================  ==========================================================================

:func:`raw_descriptors` gives the 7 raw values of one clip; :func:`rank_map` maps a corpus of
them to 0..1 by rank, the scale of the model's mid-level outputs. librosa (``train`` extra) is
imported inside the functions, so importing this module never needs it.
"""
from __future__ import annotations

import functools

import numpy as np

from .labels import MIDLEVEL_NAMES
from .signal import SAMPLE_RATE

#: Version of the descriptor definitions; part of the target cache key.
DESCRIPTOR_VERSION = 1
#: STFT of the descriptors (librosa's usual frame, hop 512 = 43 frames/s): its own analysis, not
#: the model's spectrogram (:data:`twolevel.signal.N_FFT`, ``HOP_LENGTH`` 704).
DESCRIPTOR_N_FFT = 2048
DESCRIPTOR_HOP = 512
TEMPO_RANGE_BPM = (40.0, 240.0)
EPS = 1e-10

#: Krumhansl-Kessler key profiles (C major / C minor), Krumhansl 1990.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _librosa():
    try:
        import librosa
    except ImportError as err:  # pragma: no cover - depends on the install
        from .errors import TwolevelError

        raise TwolevelError("descriptor targets need librosa: pip install 'twolevel[train]'",
                            code="missing_dependency") from err
    return librosa


# --- hand-computed pieces (short and tested) -------------------------------------------------

@functools.lru_cache(maxsize=1)
def _centred_key_profiles() -> np.ndarray:
    """The 24 KK profiles rotated to every tonic, each minus its mean: ``(24, 12)``, 12 major then
    12 minor (cached: do not modify)."""
    profiles = np.stack([np.roll(p, tonic) for p in (KK_MAJOR, KK_MINOR) for tonic in range(12)])
    return profiles - profiles.mean(axis=1, keepdims=True)


def key_correlations(chroma: np.ndarray) -> np.ndarray:
    """Pearson r of a 12-bin chroma vector with the 24 rotated KK profiles: ``(24,)``, 12 major then 12 minor
    (0 where the chroma is flat)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    c = chroma - chroma.mean()
    q = _centred_key_profiles()
    denom = np.sqrt((c * c).sum() * (q * q).sum(axis=1))
    # all 24 at once: this runs for every key window of every clip and every mode-contrast crop
    return np.where(denom > EPS, q @ c / np.where(denom > EPS, denom, 1.0), 0.0)


def plomp_levelt(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """Sethares' (1993) parametrisation of the Plomp-Levelt dissonance of two pure tones (peak ~1)."""
    b1, b2, s1, s2, dstar = 3.5, 5.75, 0.0207, 18.96, 0.24
    fmin = np.minimum(f1, f2)
    s = dstar / (s1 * fmin + s2)
    d = np.abs(f2 - f1)
    return 5.5 * (np.exp(-b1 * s * d) - np.exp(-b2 * s * d))


def roughness(freqs: np.ndarray, amps: np.ndarray) -> float:
    """Amplitude-weighted sensory roughness of a set of partials, normalised by their total power.

    ``sum_{i<j} a_i a_j PL(f_i, f_j) / sum_i a_i^2``: independent of loudness, 0 for one partial.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    amps = np.asarray(amps, dtype=np.float64)
    if len(freqs) < 2:
        return 0.0
    i, j = np.triu_indices(len(freqs), k=1)
    total = float((amps[i] * amps[j] * plomp_levelt(freqs[i], freqs[j])).sum())
    return total / max(float((amps**2).sum()), EPS)


def spectral_peaks(mag: np.ndarray, freqs: np.ndarray, n_peaks: int = 20, floor_db: float = -40.0):
    """The ``n_peaks`` strongest local maxima of one magnitude spectrum within ``floor_db`` of its max."""
    if mag.max() <= EPS:
        return freqs[:0], mag[:0]
    is_peak = np.zeros(len(mag), dtype=bool)
    is_peak[1:-1] = (mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])
    is_peak &= mag >= mag.max() * 10 ** (floor_db / 20)
    is_peak &= freqs >= 20.0
    idx = np.flatnonzero(is_peak)
    idx = idx[np.argsort(mag[idx])[::-1][:n_peaks]]
    return freqs[idx], mag[idx]


def entropy(p: np.ndarray) -> float:
    """Normalised Shannon entropy (0..1) of a non-negative vector."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0, None)
    if p.sum() <= EPS or len(p) < 2:
        return 0.0
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(len(p)))


# --- descriptors --------------------------------------------------------------------------------

class _Analysis:
    """Shared intermediate representations of one clip (computed lazily, once)."""

    def __init__(self, y: np.ndarray, sr: int):
        self.librosa = _librosa()
        y = np.asarray(y, dtype=np.float32)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        self.y = y / peak if peak > 0 else y
        self.sr = sr
        self._cache: dict[str, object] = {}

    def _get(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def stft(self) -> np.ndarray:
        return self._get("stft", lambda: np.abs(self.librosa.stft(self.y, n_fft=DESCRIPTOR_N_FFT,
                                                                    hop_length=DESCRIPTOR_HOP)))

    @property
    def hpss(self) -> tuple[np.ndarray, np.ndarray]:
        return self._get("hpss", lambda: self.librosa.decompose.hpss(self.stft, margin=1.0))

    @property
    def chroma(self) -> np.ndarray:
        def f():
            harm = self.hpss[0]
            return self.librosa.feature.chroma_stft(S=harm**2, sr=self.sr, n_fft=DESCRIPTOR_N_FFT,
                                                    hop_length=DESCRIPTOR_HOP, tuning=0.0)
        return self._get("chroma", f)

    @property
    def flatness(self) -> float:
        return self._get("flat", lambda: float(np.mean(self.librosa.feature.spectral_flatness(S=self.stft + EPS))))

    @property
    def onset_env(self) -> np.ndarray:
        return self._get("onset", lambda: self.librosa.onset.onset_strength(S=self.librosa.amplitude_to_db(
            self.stft, ref=np.max), sr=self.sr, hop_length=DESCRIPTOR_HOP))

    @property
    def tempo_lags(self) -> np.ndarray:
        """Mean tempogram (onset autocorrelation, lag 0 = 1) restricted to lags of 40..240 BPM."""
        def f():
            env = self.onset_env
            env = env - env.mean()  # centred: the autocorrelation then has no DC floor
            win = 384
            tg = self.librosa.feature.tempogram(onset_envelope=env, sr=self.sr, hop_length=DESCRIPTOR_HOP,
                                                win_length=win, norm=None)
            mean = tg.mean(axis=1)
            mean = mean / mean[0] if mean[0] > EPS else np.zeros_like(mean)
            bpm = self.librosa.tempo_frequencies(len(mean), sr=self.sr, hop_length=DESCRIPTOR_HOP)
            keep = (bpm >= TEMPO_RANGE_BPM[0]) & (bpm <= TEMPO_RANGE_BPM[1])
            return mean[keep]
        return self._get("tempo", f)


def melodiousness(a: _Analysis) -> float:
    harm, perc = a.hpss
    harm_share = float((harm**2).sum() / max((harm**2).sum() + (perc**2).sum(), EPS))
    chroma = a.chroma
    energy = chroma.sum(axis=0)
    frames = energy > EPS
    peaky = float(np.mean(chroma.max(axis=0)[frames] / energy[frames])) if frames.any() else 0.0
    # chroma peakiness runs from 1/12 (flat) to 1 (one pitch class); rescale to 0..1
    peaky = (peaky - 1 / 12) / (1 - 1 / 12)
    return harm_share * peaky * (1.0 - min(1.0, 4.0 * a.flatness))


def articulation(a: _Analysis) -> float:
    harm, perc = a.hpss
    perc_share = float((perc**2).sum() / max((harm**2).sum() + (perc**2).sum(), EPS))
    onsets = a.librosa.onset.onset_detect(onset_envelope=a.onset_env, sr=a.sr, hop_length=DESCRIPTOR_HOP, units="time")
    rate = len(onsets) / max(len(a.y) / a.sr, EPS)
    return perc_share + 0.25 * float(np.log1p(rate) / np.log1p(10.0))


def rhythm_stability(a: _Analysis) -> float:
    lags = a.tempo_lags
    return float(np.clip(lags, 0, None).max()) if len(lags) else 0.0


def rhythm_complexity(a: _Analysis) -> float:
    return entropy(a.tempo_lags)


def dissonance(a: _Analysis, frame_step: int = 4) -> float:
    mag = a.stft[:, ::frame_step]
    freqs = a.librosa.fft_frequencies(sr=a.sr, n_fft=DESCRIPTOR_N_FFT)
    loud = mag.sum(axis=0)
    keep = loud > 0.05 * loud.max() if loud.size and loud.max() > 0 else np.zeros(0, dtype=bool)
    values = [roughness(*spectral_peaks(mag[:, t], freqs)) for t in np.flatnonzero(keep)]
    rough = float(np.mean(values)) if values else 0.0
    return rough + a.flatness


def _key_profile_scores(a: _Analysis) -> tuple[np.ndarray, float]:
    corr = key_correlations(a.chroma.mean(axis=1))
    win = max(1, int(round(2.0 * a.sr / DESCRIPTOR_HOP)))
    chroma = a.chroma
    best = int(np.argmax(corr))
    agree = [int(np.argmax(key_correlations(chroma[:, s:s + win].mean(axis=1)))) == best
             for s in range(0, max(1, chroma.shape[1] - win + 1), win)]
    return corr, float(np.mean(agree)) if agree else 0.0


def tonal_stability(a: _Analysis) -> float:
    corr, agree = _key_profile_scores(a)
    return max(0.0, float(corr.max())) * agree


def minorness(a: _Analysis) -> float:
    corr = key_correlations(a.chroma.mean(axis=1))
    return float(corr[12:].max() - corr[:12].max())


DESCRIPTORS = {
    "melodiousness": melodiousness,
    "articulation": articulation,
    "rhythm_stability": rhythm_stability,
    "rhythm_complexity": rhythm_complexity,
    "dissonance": dissonance,
    "tonal_stability": tonal_stability,
    "minorness": minorness,
}
assert tuple(DESCRIPTORS) == MIDLEVEL_NAMES


def descriptor(name: str, y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """One raw descriptor of a mono signal (for tests and inspection)."""
    return float(DESCRIPTORS[name](_Analysis(y, sr)))


def raw_descriptors(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 7 raw descriptors of a mono signal, float64 in :data:`MIDLEVEL_NAMES` order (the v1 set;
    :mod:`twolevel.descriptor_sets` chooses between sets)."""
    a = _Analysis(y, sr)
    return np.array([float(DESCRIPTORS[n](a)) for n in MIDLEVEL_NAMES], dtype=np.float64)


def rank_map(raw: np.ndarray) -> np.ndarray:
    """Map each column of ``(n_clips, 7)`` raw descriptors to 0..1 by its rank over the corpus.

    Ties share their mean rank; the lowest value maps to 0 and the highest to 1 (0.5 for all
    when there is one clip).
    """
    from scipy.stats import rankdata

    raw = np.asarray(raw, dtype=np.float64)
    n = raw.shape[0]
    if n == 1:
        return np.full_like(raw, 0.5)
    return (rankdata(raw, axis=0, method="average") - 1.0) / (n - 1.0)
