"""Griffin-Lim on torch, the exact inversion, and the band -> linear-bin mapping."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from twolevel.explain.resynthesis import (band_to_bin_shares, griffin_lim, istft, linear_mask, resynthesise,
                                          spectral_convergence, stft)
from twolevel.frontend import log_filterbank
from twolevel.signal import SAMPLE_RATE

SECONDS = 2.0


def tones(*freqs, amplitude=0.4):
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(amplitude * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def peaks(signal: np.ndarray, n: int) -> list[float]:
    """Frequencies (Hz) of the ``n`` strongest spectral peaks, one per lobe."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / SAMPLE_RATE)
    found = []
    for i in np.argsort(-spectrum):
        if all(abs(freqs[i] - f) > 50 for f in found):
            found.append(float(freqs[i]))
        if len(found) == n:
            return sorted(found)
    return sorted(found)


def test_spectral_convergence_falls_with_iterations():
    x = tones(220.0, 660.0)[:22050] + 0.01 * np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    x = torch.from_numpy(x.astype(np.float32))
    mag = stft(x[None]).abs()
    errors = [float(spectral_convergence(mag, griffin_lim(mag, n, length=x.shape[-1]))[0]) for n in (2, 8, 32)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


def test_momentum_helps():
    x = torch.from_numpy(tones(330.0, 1000.0))
    mag = stft(x[None]).abs()
    fast = float(spectral_convergence(mag, griffin_lim(mag, 32, momentum=0.99, length=x.shape[-1]))[0])
    plain = float(spectral_convergence(mag, griffin_lim(mag, 32, momentum=0.0, length=x.shape[-1]))[0])
    assert fast < plain


@pytest.mark.parametrize("freqs", [(440.0,), (300.0, 1250.0)])
def test_tones_come_back_at_the_right_frequencies(freqs):
    x = tones(*freqs)
    mag = stft(torch.from_numpy(x)[None]).abs()
    y = griffin_lim(mag, 48, length=len(x))[0].numpy()
    found = peaks(y, len(freqs))
    assert len(found) == len(freqs)
    for got, want in zip(found, freqs):
        assert abs(got - want) < 3.0  # the analysis resolution is 0.5 Hz; GL adds little smear
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.15)


def test_griffin_lim_is_seeded_and_accepts_2d():
    mag = stft(torch.from_numpy(tones(500.0))[None]).abs()
    a = griffin_lim(mag[0], 4, seed=1)
    assert a.dim() == 1
    torch.testing.assert_close(a, griffin_lim(mag[0], 4, seed=1))


def test_original_phase_inversion_is_near_exact():
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(44100).astype(np.float32) * 0.2)
    y = istft(stft(x[None]), x.shape[-1])[0]
    assert float((y - x).abs().max()) < 1e-5
    assert float(spectral_convergence(stft(x[None]).abs(), y[None])[0]) < 1e-5


def test_band_shares_partition_every_heard_bin():
    bank = log_filterbank()
    shares = band_to_bin_shares(bank)
    covered = bank.sum(axis=0) > 0
    np.testing.assert_allclose(shares.sum(axis=0)[covered], 1.0, atol=1e-9)
    assert np.all(shares.sum(axis=0)[~covered] == 0)
    full = linear_mask(np.ones((313, 149), bool), bank, 314)
    assert full.shape == (1025, 314)
    np.testing.assert_allclose(full[covered], 1.0, atol=1e-9)
    assert not linear_mask(np.zeros((313, 149), bool), bank, 314).any()


def test_resynthesis_outputs_and_definitions():
    x = tones(440.0, 3000.0)
    x = np.tile(x, 5)[:220500]
    bank = log_filterbank()
    centres = np.argmax(bank, axis=1)
    low_bands = centres < 1000 * 2048 / SAMPLE_RATE  # the bands below 1 kHz hold the 440 Hz tone
    positive = np.zeros((313, 149), bool)
    positive[:, low_bands] = True
    negative = ~positive
    out = resynthesise(x, {"articulation": (positive, negative)}, bank, n_iter=8)
    expected = {"input", "original.griffinlim"} | {f"articulation.{k}.{m}" for k in ("enhanced", "positive", "negative")
                                                   for m in ("griffinlim", "originalphase")}
    assert set(out.audio) == expected
    assert set(out.spectral_convergence) == expected - {"input"}
    assert all(a.shape == (220500,) and a.dtype == np.float32 for a in out.audio.values())
    assert max(float(np.abs(a).max()) for a in out.audio.values()) <= 0.99 + 1e-6
    # positive-only keeps the 440 Hz tone and drops the 3 kHz one; negative-only the reverse
    assert peaks(out.audio["articulation.positive.originalphase"], 1) == pytest.approx([440.0], abs=3)
    assert peaks(out.audio["articulation.negative.originalphase"], 1) == pytest.approx([3000.0], abs=3)
    # enhanced: the positive tone twice as loud, the negative one gone
    enhanced = out.audio["articulation.enhanced.originalphase"] / out.gain
    assert peaks(enhanced, 1) == pytest.approx([440.0], abs=3)
    assert np.sqrt(np.mean(enhanced ** 2)) == pytest.approx(2 * 0.4 / np.sqrt(2), rel=0.1)
