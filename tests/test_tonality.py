"""Synthetic checks of the sharper tonal and pulse descriptors (twolevel/tonality.py)."""
from __future__ import annotations

import numpy as np
import pytest

from twolevel.signal import SAMPLE_RATE
from twolevel.tonality import cqt_chroma, key_clarity, minorness_v2, modulation_rate, pulse_clarity, tonal_stability_v2

SR = SAMPLE_RATE
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]


def tone(midi: int, seconds: float, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(amp / k * np.sin(2 * np.pi * k * f * t) for k in (1, 2, 3) if k * f < SR / 2)
    return y * np.exp(-2.0 * t) * np.minimum(1, t * 200)


def chord_sequence(tonics, mode, bar_seconds=2.0, degrees=(0, 3, 4, 0)) -> np.ndarray:
    """One triad per half bar on ``degrees`` of the key ``tonics[bar]``, plus a scale run over it."""
    out = []
    for bar, tonic in enumerate(tonics):
        seg = np.zeros(int(bar_seconds * SR))
        half = len(seg) // 2
        for h in range(2):
            d = degrees[(2 * bar + h) % len(degrees)]
            for k in (0, 2, 4):
                p = 48 + tonic + 12 * ((d + k) // 7) + mode[(d + k) % 7]
                seg[h * half:(h + 1) * half] += tone(p, half / SR)[:half]
        step = len(seg) // 8
        for n in range(8):
            p = 60 + tonic + 12 * (n // 7) + mode[n % 7]
            seg[n * step:(n + 1) * step] += tone(p, step / SR)[:step]
        out.append(seg)
    return np.concatenate(out).astype(np.float32)


def test_one_key_is_more_stable_than_a_key_change_every_bar():
    stable = chord_sequence([2] * 5, MAJOR)
    wandering = chord_sequence([2, 8, 1, 7, 0], MAJOR)  # tritone and semitone steps
    assert tonal_stability_v2(stable) > tonal_stability_v2(wandering) + 0.1


def test_minor_triads_are_more_minor_than_the_same_in_major():
    for tonic in (0, 7):
        assert minorness_v2(chord_sequence([tonic] * 5, MINOR)) > minorness_v2(chord_sequence([tonic] * 5, MAJOR))


def test_chroma_of_unpitched_audio_is_quiet_about_tuning():
    import warnings

    noise = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's "empty frequency set" warning would fail here
        for y in (np.zeros(3 * SAMPLE_RATE, np.float32), noise):
            chroma = cqt_chroma(y)
            assert chroma.shape[0] == 12 and np.isfinite(chroma).all()


def test_modulation_rate_counts_key_changes_and_relative_keys_as_one():
    corr = np.full((4, 24), -0.5)
    corr[0, 0] = corr[1, 12 + 9] = 0.9  # C major, then A minor: the same key signature
    corr[2, 6] = 0.9                    # F# major: a change
    corr[3, 6] = 0.9
    assert modulation_rate(corr) == pytest.approx(1 / 3)
    clear = key_clarity(corr)
    assert clear[0] == pytest.approx(1.4)


def test_a_metronome_has_a_clearer_pulse_than_random_onsets():
    rng = np.random.default_rng(0)
    n = int(10 * SR)
    click = tone(84, 0.05, 0.8)

    def place(times):
        y = np.zeros(n)
        for t in times:
            i = int(t * SR)
            y[i:i + len(click)] += click[: n - i]
        return y.astype(np.float32)

    steady = place(np.arange(0, 9.9, 0.5))  # 120 BPM
    loose = place(np.sort(rng.uniform(0, 9.9, len(np.arange(0, 9.9, 0.5)))))
    assert pulse_clarity(steady) > pulse_clarity(loose) + 0.1
    assert pulse_clarity(np.zeros(n, dtype=np.float32)) == 0.0


def test_descriptor_set_v2_swaps_in_the_sharper_tonal_and_pulse_descriptors():
    from twolevel.descriptor_sets import descriptor_cache_key, raw_descriptors
    from twolevel.labels import MIDLEVEL_NAMES

    sr = 22050
    t = np.arange(int(12 * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + np.sign(np.sin(2 * np.pi * 2.0 * t))) / 2).astype(np.float32)
    v1, v2 = raw_descriptors(y, sr), raw_descriptors(y, sr, descriptors="v2")
    swapped = {"tonal_stability": tonal_stability_v2, "minorness": minorness_v2, "rhythm_stability": pulse_clarity}
    for i, name in enumerate(MIDLEVEL_NAMES):
        if name in swapped:
            assert v2[i] == pytest.approx(swapped[name](y, sr))
        else:
            assert v2[i] == v1[i]
    from twolevel.targets import DESCRIPTOR_VERSION

    # v1 keeps the integer key its caches were written under (the cache key hashes JSON: 1 != "1")
    assert descriptor_cache_key("v1") == DESCRIPTOR_VERSION and isinstance(descriptor_cache_key("v1"), int)
    assert descriptor_cache_key("v2") not in (1, "1")
    with pytest.raises(ValueError, match="descriptors must be one of v1, v2, v3"):
        raw_descriptors(y, sr, descriptors="v9")
    # v3 takes minorness alone from the sharper set
    v3 = raw_descriptors(y, sr, descriptors="v3", v1=v1)
    minor = MIDLEVEL_NAMES.index("minorness")
    assert v3[minor] == pytest.approx(minorness_v2(y, sr))
    assert np.array_equal(np.delete(v3, minor), np.delete(v1, minor))
    assert descriptor_cache_key("v3") not in (descriptor_cache_key("v1"), descriptor_cache_key("v2"))


def test_cached_v2_descriptors_reuse_the_cached_v1_columns(tmp_path, monkeypatch):
    import soundfile as sf

    from twolevel import descriptor_sets
    from twolevel.training import cached_descriptors

    path = tmp_path / "clip.wav"
    sf.write(path, chord_sequence([0, 0, 0], MAJOR), SR)
    v1 = cached_descriptors([path], tmp_path / "cache")[0]
    monkeypatch.setattr(descriptor_sets, "raw_v1", lambda *a: pytest.fail("v1 recomputed"))
    v2 = cached_descriptors([path], tmp_path / "cache", descriptors="v2")[0]
    again = cached_descriptors([path], tmp_path / "cache", descriptors="v2")[0]  # from its own cache now
    from twolevel.labels import MIDLEVEL_NAMES

    swapped = [MIDLEVEL_NAMES.index(n) for n in ("tonal_stability", "minorness", "rhythm_stability")]
    kept = [i for i in range(len(MIDLEVEL_NAMES)) if i not in swapped]
    np.testing.assert_array_equal(v2[kept], v1[kept])
    np.testing.assert_array_equal(again, v2)
    assert not np.allclose(v2[swapped], v1[swapped])


@pytest.mark.parametrize("tonic", [0, 3, 7, 10])
@pytest.mark.parametrize("minor", [False, True])
def test_spectrogram_key_names_the_tonic_and_mode_of_a_held_triad(tonic, minor):
    from synthetic import chord_spectrogram
    from twolevel.tonality import spectrogram_key

    found_tonic, found_minor, clarity = spectrogram_key(chord_spectrogram(tonic, minor))
    assert (found_tonic, found_minor) == (tonic, minor)
    assert clarity > 0  # a bare major triad only just beats its relative minor (KK profiles)


def test_spectrogram_key_agrees_with_the_key_profiles_of_its_chroma():
    from twolevel.targets import key_correlations
    from twolevel.tonality import spectrogram_chroma, spectrogram_key

    spec = np.random.default_rng(4).random((50, 149)).astype(np.float32)
    corr = key_correlations(spectrogram_chroma(spec))
    tonic, minor, clarity = spectrogram_key(spec)
    best = int(np.argmax(corr))
    assert (tonic, minor) == (best % 12, best >= 12)
    other = corr[:12] if minor else corr[12:]
    assert clarity == pytest.approx(corr[best] - other.max())
    assert spectrogram_key(np.zeros((50, 149)))[2] == 0.0  # silence: no key, no clarity
