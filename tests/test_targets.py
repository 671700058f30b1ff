"""Mid-level descriptor targets: the synthetic-signal properties of docs/midlevel-targets.md."""
from __future__ import annotations

import numpy as np
import pytest

from twolevel.labels import MIDLEVEL_NAMES
from twolevel.targets import (key_correlations, plomp_levelt, rank_map, roughness)

SR = 22050


def tone(freq, dur, sr=SR, harmonics=4, decay=None):
    t = np.arange(int(dur * sr)) / sr
    y = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))
    if decay is not None:
        y = y * np.exp(-t / decay)
    ramp = min(len(t), int(0.005 * sr))
    y[:ramp] *= np.linspace(0, 1, ramp)
    y[-ramp:] *= np.linspace(1, 0, ramp)
    return y


def midi(m):
    return 440.0 * 2 ** ((m - 69) / 12)


def notes(pitches, step, length, total, decay=None):
    out = np.zeros(int(total * SR))
    for i, start in enumerate(np.arange(0, total - step + 1e-9, step)):
        seg = tone(midi(pitches[i % len(pitches)]), length, decay=decay)
        s = int(start * SR)
        out[s:s + len(seg)] += seg[: len(out) - s]
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def chords(triads, dur=1.0, reps=2):
    out = []
    for _ in range(reps):
        for root, kind in triads:
            third = 3 if kind == "min" else 4
            y = sum(tone(midi(root + iv), dur, harmonics=3) for iv in (0, third, 7))
            out.append(y)
    y = np.concatenate(out)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def clicks(times, total):
    y = np.zeros(int(total * SR))
    burst = np.random.default_rng(0).standard_normal(int(0.01 * SR)) * np.exp(-np.arange(int(0.01 * SR)) / 40)
    for t in times:
        s = int(t * SR)
        y[s:s + len(burst)] += burst[: len(y) - s]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


# --- hand-computed pieces ----------------------------------------------------------------------

def test_key_profiles_find_c_major_and_a_minor():
    c_major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], float) + np.eye(12)[0] * 2 + np.eye(12)[7]
    corr = key_correlations(c_major)
    assert int(np.argmax(corr)) == 0  # C major
    a_minor = np.roll(np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]), 9)
    corr = key_correlations(a_minor)
    assert int(np.argmax(corr)) == 12 + 9 and corr.max() == pytest.approx(1.0)


def test_plomp_levelt_curve():
    assert plomp_levelt(np.array([440.0]), np.array([440.0]))[0] == pytest.approx(0.0)
    # roughest near a quarter of a critical band, small at an octave
    close = plomp_levelt(np.array([440.0]), np.array([466.2]))[0]
    octave = plomp_levelt(np.array([440.0]), np.array([880.0]))[0]
    assert close > 0.5 > octave >= 0
    assert roughness([440.0], [1.0]) == 0.0


def test_rank_map_is_0_to_1_by_rank():
    raw = np.array([[3.0] * 7, [1.0] * 7, [2.0] * 7])
    out = rank_map(raw)
    assert out[:, 0].tolist() == [1.0, 0.0, 0.5]
    assert rank_map(raw[:1]).tolist() == [[0.5] * 7]


# --- the five synthetic-signal properties ----------------------------------------------------

librosa = pytest.importorskip("librosa")
from twolevel.targets import descriptor  # noqa: E402


def test_staccato_has_higher_articulation_than_legato():
    pitches = [60, 62, 64, 65, 67, 65, 64, 62]
    staccato = notes(pitches, step=0.25, length=0.06, total=8.0, decay=0.02)
    legato = notes(pitches, step=0.25, length=0.25, total=8.0)
    assert descriptor("articulation", staccato) > descriptor("articulation", legato)


def test_metronome_is_more_stable_and_less_complex_than_random_onsets():
    total = 12.0
    metronome = clicks(np.arange(0.1, total - 0.1, 0.5), total)
    rng = np.random.default_rng(1)
    random = clicks(np.sort(rng.uniform(0.1, total - 0.1, 24)), total)
    assert descriptor("rhythm_stability", metronome) > descriptor("rhythm_stability", random)
    assert descriptor("rhythm_complexity", metronome) < descriptor("rhythm_complexity", random)


def test_minor_triads_have_higher_minorness_than_major():
    roots = [57, 62, 64, 57]  # A D E A
    minor = chords([(r, "min") for r in roots])
    major = chords([(r, "maj") for r in roots])
    assert descriptor("minorness", minor) > descriptor("minorness", major)


def test_minor_second_cluster_is_more_dissonant_than_fifth():
    dur = 3.0
    second = tone(midi(60), dur) + tone(midi(61), dur)
    fifth = tone(midi(60), dur) + tone(midi(67), dur)
    assert descriptor("dissonance", second.astype(np.float32)) > descriptor("dissonance", fifth.astype(np.float32))


def test_diatonic_melody_is_more_tonally_stable_than_modulating_one():
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 7, 4]
    bar = [60 + s for s in scale]  # 10 notes x 0.25 s = one 2.5 s bar
    steady = notes(bar * 6, step=0.25, length=0.25, total=15.0)
    modulating = notes([p + 5 * b for b in range(6) for p in bar], step=0.25, length=0.25, total=15.0)
    # every bar in a new key (up a fourth): the 2 s windows disagree with the global key
    assert descriptor("tonal_stability", steady) > descriptor("tonal_stability", modulating)


def test_raw_descriptors_order_and_finite():
    from twolevel.targets import raw_descriptors

    y = notes([60, 64, 67], step=0.3, length=0.3, total=3.0)
    raw = raw_descriptors(y)
    assert raw.shape == (len(MIDLEVEL_NAMES),) and np.all(np.isfinite(raw))
