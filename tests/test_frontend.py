"""Front end: 149 log-spaced bands, a sine lands in its band after resampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from twolevel.audio import load_audio
from twolevel.frontend import Frontend, band_centre_frequencies, log_band_bins, log_filterbank
from twolevel.signal import N_BANDS, SAMPLE_RATE, WINDOW_SAMPLES


def test_filterbank_has_149_unit_area_bands():
    bank = log_filterbank()
    assert bank.shape == (N_BANDS, 1025) == (149, 1025)
    np.testing.assert_allclose(bank.sum(axis=1), 1.0, rtol=1e-5)
    assert (bank >= 0).all()


def test_bands_are_log_spaced_at_24_per_octave_above_the_merged_low_bands():
    centres = band_centre_frequencies()
    assert np.all(np.diff(centres) > 0)
    high = centres[centres > 1000]
    # Where STFT bins are dense enough, neighbours are a 24th of an octave apart (bin rounding aside).
    steps = np.log2(high[1:] / high[:-1]) * 24
    assert np.median(steps) == pytest.approx(1.0, abs=0.05)
    assert centres[-1] < SAMPLE_RATE / 2
    bins = log_band_bins()
    assert len(np.unique(bins)) == len(bins)  # duplicates merged


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_1khz_sine_peaks_in_the_band_containing_1khz(rate):
    t = np.arange(rate * 2) / rate
    audio = load_audio(0.5 * np.sin(2 * np.pi * 1000.0 * t).astype(np.float32), sample_rate=rate)
    spec = Frontend().log_spectrogram(torch.from_numpy(audio.samples)[None])[0]  # (frames, 149)
    peak_band = int(spec[5:-5].mean(0).argmax())
    bank = log_filterbank()
    bin_1k = int(round(1000.0 * 2048 / SAMPLE_RATE))
    assert bank[peak_band, bin_1k] == bank[:, bin_1k].max()
    assert abs(band_centre_frequencies()[peak_band] - 1000.0) < 40


def test_frontend_shapes_and_normalisation():
    fe = Frontend(mean=2.0, std=4.0)
    x = torch.randn(3, WINDOW_SAMPLES) * 0.1
    out = fe(x)
    assert out.shape == (3, 1, 314, 149)
    raw = fe.log_spectrogram(x)
    torch.testing.assert_close(out[:, 0], (raw - 2.0) / 4.0)
    torch.testing.assert_close(fe.denormalise(fe.normalise(raw)), raw)


def test_stft_kernels_are_not_saved():
    keys = Frontend().state_dict().keys()
    assert set(keys) == {"mean", "std"}
