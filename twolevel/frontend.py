"""Spectrogram front end: nnAudio STFT -> 149-band log-frequency filterbank -> log -> normalise.

It is an ``nn.Module`` inside the model, so it runs on the model's device (the GPU when
there is one). Shapes follow the network's convention: ``(batch, 1, time, frequency)``.
"""
from __future__ import annotations

import numpy as np
import torch
from nnAudio.features import STFT
from torch import nn

from .signal import BANDS_PER_OCTAVE, FMAX_HZ, FMIN_HZ, HOP_LENGTH, N_FFT, SAMPLE_RATE


def fft_frequencies(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Centre frequency of each STFT bin, in Hz, shape ``(n_fft // 2 + 1,)``."""
    return np.arange(n_fft // 2 + 1) * sample_rate / n_fft


def log_band_bins(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    bands_per_octave: int = BANDS_PER_OCTAVE,
    fmin: float = FMIN_HZ,
    fmax: float = FMAX_HZ,
    fref: float = 440.0,
) -> np.ndarray:
    """STFT bins of the log-spaced band edges (duplicates merged), as int array.

    Frequencies ``fref * 2**(k / bands_per_octave)`` in ``[fmin, fmax]`` are mapped to their
    nearest STFT bin; low bands that land on the same bin are merged, and frequencies above
    Nyquist collapse onto the last bin. Consecutive triples of these bins define the
    triangular filters, so there are ``len(bins) - 2`` bands (149 with the paper's settings).
    """
    lo = np.floor(np.log2(fmin / fref) * bands_per_octave)
    hi = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(lo, hi + 1) / bands_per_octave)
    freqs = freqs[(freqs >= fmin) & (freqs <= fmax)]
    bin_freqs = fft_frequencies(sample_rate, n_fft)
    idx = np.clip(np.searchsorted(bin_freqs, freqs), 1, len(bin_freqs) - 1)
    idx = idx - ((freqs - bin_freqs[idx - 1]) < (bin_freqs[idx] - freqs))
    return np.unique(idx)


def log_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, **kwargs) -> np.ndarray:
    """Triangular log-frequency filterbank, float32 ``(n_bands, n_fft // 2 + 1)``.

    Each filter rises from its start bin to its centre bin and falls to its stop bin; filters
    are normalised to unit area so that merged narrow bands and wide high bands are comparable.
    """
    bins = log_band_bins(sample_rate, n_fft, **kwargs)
    n_bins = n_fft // 2 + 1
    bank = np.zeros((len(bins) - 2, n_bins), dtype=np.float64)
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        if stop - start < 2:  # too narrow for a triangle: one bin
            centre, stop = start, start + 1
        rise = np.linspace(0.0, 1.0, centre - start, endpoint=False)
        fall = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
        bank[band, start:stop] = np.concatenate([rise, fall])
    bank /= bank.sum(axis=1, keepdims=True)
    return bank.astype(np.float32)


def band_centre_frequencies(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Centre frequency of each filterbank band, in Hz, shape ``(n_bands,)``."""
    bins = log_band_bins(sample_rate, n_fft)
    return fft_frequencies(sample_rate, n_fft)[bins[1:-1]]


def log_compress(x: torch.Tensor) -> torch.Tensor:
    """The log magnitude used throughout: ``log10(1 + x)`` (finite at silence)."""
    return torch.log10(1.0 + x)


class Frontend(nn.Module):
    """Audio ``(batch, samples)`` -> normalised log-filterbank spectrogram ``(batch, 1, frames, 149)``.

    Normalisation uses one dataset-wide mean and standard deviation (buffers, saved in the
    checkpoint). The STFT kernels are recomputed on construction and are not saved.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.stft = STFT(
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            window="hann",
            freq_scale="no",
            center=True,
            pad_mode="reflect",
            sr=SAMPLE_RATE,
            output_format="Magnitude",
            verbose=False,
        )
        # nnAudio keeps its 16 MB of Fourier kernels as buffers; they are a pure function of the
        # settings above, so keep them out of the checkpoint.
        for name, buf in list(self.stft.named_buffers(recurse=False)):
            self.stft.register_buffer(name, buf, persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(log_filterbank()), persistent=False)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    @property
    def n_bands(self) -> int:
        return int(self.filterbank.shape[0])

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude, ``(batch, samples)`` -> ``(batch, 1025, frames)``."""
        return self.stft(audio)

    def log_spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-filterbank spectrogram, ``(batch, samples)`` -> ``(batch, frames, 149)``."""
        mag = self.magnitude(audio)
        bands = torch.matmul(self.filterbank, mag)  # (batch, 149, frames)
        return log_compress(bands).transpose(1, 2)

    def normalise(self, log_spec: torch.Tensor) -> torch.Tensor:
        """Apply the dataset statistics; any shape."""
        return (log_spec - self.mean) / self.std

    def denormalise(self, spec: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise`."""
        return spec * self.std + self.mean

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> normalised ``(batch, 1, frames, 149)``."""
        if audio.dim() == 1:
            audio = audio[None]
        return self.normalise(self.log_spectrogram(audio)).unsqueeze(1)
