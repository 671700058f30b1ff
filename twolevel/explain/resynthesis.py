"""Listenable explanations: selected spectrogram segments back to audio.

The explained segments live on the model's ``(313 frames, 149 log-frequency bands)`` grid.
Each linear STFT bin is shared among the bands whose triangular filter covers it (shares sum to
1 for every bin the model hears, 0 below 20 Hz and above 16 kHz), so a band mask becomes a soft
linear-bin mask ``(1025 bins, frames)`` with values in [0, 1].

From the input window's STFT magnitude ``|S|`` and the masks ``P`` (positive segments) and ``N``
(negative segments) of one output:

* ``original``:  ``|S|`` (Griffin-Lim from the magnitude alone: what reconstruction itself costs);
* ``enhanced``:  ``|S| * max(0, 1 + P - N)``, i.e. the original plus the positive segments once
  more (+6 dB) minus the negative segments (removed): the explanation made louder;
* ``positive``:  ``|S| * P``, only what raises the output;
* ``negative``:  ``|S| * N``, only what lowers it.

Each magnitude is inverted two ways: Griffin-Lim with fast-Griffin-Lim momentum (Perraudin et al.
2013), written on torch so it runs on the GPU when there is one; and the exact inversion that
reuses the input's phase. Spectral convergence ``|| |STFT(x)| - target ||_F / ||target||_F`` is
reported for every output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..options import default
from ..signal import HOP_LENGTH, N_FFT, SAMPLE_RATE

#: Fast Griffin-Lim acceleration (Perraudin et al. 2013 recommend 0.99).
DEFAULT_MOMENTUM = 0.99
#: Inversion methods, as they appear in output names.
GRIFFIN_LIM, ORIGINAL_PHASE = "griffinlim", "originalphase"
#: Peak level written files are limited to (a common gain for all outputs keeps them comparable).
PEAK = 0.99


def _window(device: torch.device) -> torch.Tensor:
    # Periodic Hann, as nnAudio's front end (scipy's get_window default) uses.
    return torch.hann_window(N_FFT, periodic=True, device=device)


def stft(audio: torch.Tensor) -> torch.Tensor:
    """Complex STFT as the model's front end frames it: ``(B, samples)`` -> ``(B, 1025, frames)``."""
    return torch.stft(audio, N_FFT, HOP_LENGTH, window=_window(audio.device), center=True,
                      pad_mode="reflect", return_complex=True)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` (least-squares overlap-add): ``(B, 1025, frames)`` -> ``(B, length)``.

    Equivalent to ``torch.istft(..., center=True)`` (to float precision) but written as
    irfft + ``fold`` with a window envelope, which is about a third faster on CPU, and Griffin-Lim
    spends half its time here.
    """
    window = _window(spec.device)
    frames = torch.fft.irfft(spec.transpose(1, 2), n=N_FFT) * window  # (B, frames, n_fft)
    n_frames = frames.shape[1]
    total = N_FFT + HOP_LENGTH * (n_frames - 1)
    fold = dict(output_size=(1, total), kernel_size=(1, N_FFT), stride=(1, HOP_LENGTH))
    signal = torch.nn.functional.fold(frames.transpose(1, 2), **fold)[:, 0, 0]
    envelope = torch.nn.functional.fold((window ** 2).expand(1, n_frames, N_FFT).transpose(1, 2), **fold)[0, 0, 0]
    start = N_FFT // 2  # undo the centring pad of the forward STFT
    signal = signal[:, start:start + length] / envelope[start:start + length].clamp_min(1e-11)
    if signal.shape[-1] < length:  # asked for more than the frames cover: zeros, as torch.istft gives
        signal = torch.nn.functional.pad(signal, (0, length - signal.shape[-1]))
    return signal


def spectral_convergence(target_magnitude: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """``|| |STFT(audio)| - target ||_F / || target ||_F`` per batch item, ``(B,)``."""
    rebuilt = stft(audio).abs()
    diff = torch.linalg.vector_norm(rebuilt - target_magnitude, dim=(-2, -1))
    return diff / torch.linalg.vector_norm(target_magnitude, dim=(-2, -1)).clamp_min(1e-12)


def griffin_lim(magnitude: torch.Tensor, n_iter: int = default("griffin_lim_iters"), momentum: float = DEFAULT_MOMENTUM,
                length: int | None = None, seed: int = 0) -> torch.Tensor:
    """Fast Griffin-Lim on torch: a signal whose STFT magnitude approximates ``magnitude``.

    Args:
        magnitude: ``(B, 1025, frames)`` or ``(1025, frames)`` non-negative, on any device.
        n_iter: projection iterations.
        momentum: acceleration ``alpha`` of fast Griffin-Lim (0 gives classic Griffin-Lim).
        length: output length in samples (default ``(frames - 1) * hop``).
        seed: seeds the random initial phase (drawn on the CPU, so results do not depend on the device).

    Returns:
        float ``(B, length)`` (or ``(length,)`` for a 2-D input), on ``magnitude``'s device.
    """
    squeeze = magnitude.dim() == 2
    mag = magnitude[None] if squeeze else magnitude
    mag = mag.float()
    length = length or (mag.shape[-1] - 1) * HOP_LENGTH
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(mag.shape, generator=generator) * (2 * np.pi)
    phase = torch.polar(torch.ones_like(angle), angle).to(mag.device)
    previous = torch.zeros_like(phase)
    for _ in range(n_iter):
        # Project onto consistent spectrograms (ISTFT then STFT) ...
        projected = stft(istft(mag * phase, length))
        # ... then extrapolate along the last step (the "fast" part) and keep only the phase.
        accelerated = torch.add(projected, projected - previous, alpha=momentum)
        previous = projected
        phase = torch.sgn(accelerated)  # z / |z| (0 where z is 0)
    audio = istft(mag * phase, length)
    return audio[0] if squeeze else audio


def band_to_bin_shares(filterbank: np.ndarray) -> np.ndarray:
    """``(bands, bins)`` share of each linear bin that belongs to each band.

    Each triangle is scaled to peak 1 (the filterbank itself is unit-area), then the shares of a
    bin are normalised to sum to 1 over the bands covering it; uncovered bins get all zeros.
    """
    bank = np.asarray(filterbank, dtype=np.float64)
    tri = bank / np.maximum(bank.max(axis=1, keepdims=True), 1e-30)
    cover = tri.sum(axis=0, keepdims=True)
    return np.divide(tri, cover, out=np.zeros_like(tri), where=cover > 0)


def linear_mask(band_mask: np.ndarray, filterbank: np.ndarray, n_frames: int) -> np.ndarray:
    """Soft linear-frequency mask ``(bins, n_frames)`` in [0, 1] from a ``(frames, bands)`` mask.

    STFT frames beyond the model's window (the centred STFT of 10 s has 314 frames, the model
    sees 313) repeat the last frame's mask.
    """
    mask = np.asarray(band_mask, dtype=np.float64) @ band_to_bin_shares(filterbank)  # (frames, bins)
    if mask.shape[0] < n_frames:
        mask = np.concatenate([mask, np.repeat(mask[-1:], n_frames - mask.shape[0], axis=0)])
    return np.clip(mask[:n_frames].T, 0.0, 1.0)


@dataclass
class Resynthesis:
    """Audio of the explanations.

    Attributes:
        audio: name -> float32 ``(samples,)`` at 22,050 Hz. Names: ``input`` (the window as
            heard), ``original.griffinlim``, and for every explained output ``OUT``
            ``OUT.{enhanced,positive,negative}.{griffinlim,originalphase}``, leaving out the side
            of an empty selection (silence) and ``enhanced`` when both sides are empty.
        spectral_convergence: name -> float, for every name but ``input``.
        gain: the common gain applied to keep all peaks under :data:`PEAK`.
        iterations, momentum: Griffin-Lim settings.
        definition: how the magnitudes were built (for reports).
    """

    audio: dict
    spectral_convergence: dict
    gain: float
    iterations: int
    momentum: float
    definition: str = ("enhanced = |S| * max(0, 1 + P - N); positive = |S| * P; negative = |S| * N; "
                       "P, N: soft linear-bin masks of the positive and negative segments")

    def info(self) -> dict:
        return {"names": sorted(self.audio), "spectral_convergence": self.spectral_convergence,
                "gain": self.gain, "iterations": self.iterations, "momentum": self.momentum,
                "definition": self.definition, "sample_rate": SAMPLE_RATE}


def resynthesise(window: np.ndarray, band_masks: dict, filterbank: np.ndarray, n_iter: int = default("griffin_lim_iters"),
                 momentum: float = DEFAULT_MOMENTUM, device: torch.device | str = "cpu",
                 seed: int = 0) -> Resynthesis:
    """Invert the explanation magnitudes of one window.

    Args:
        window: float ``(samples,)`` audio the model heard (22,050 Hz).
        band_masks: output name -> ``(positive, negative)`` boolean ``(frames, bands)`` masks.
        filterbank: ``(bands, bins)`` the front end's filterbank.
        n_iter, momentum, seed: Griffin-Lim settings.
        device: where to run.

    Returns:
        :class:`Resynthesis`.
    """
    device = torch.device(device)
    audio = torch.as_tensor(np.asarray(window, dtype=np.float32), device=device)[None]
    length = audio.shape[-1]
    spec = stft(audio)[0]  # (bins, frames)
    magnitude, phase = spec.abs(), torch.polar(torch.ones_like(spec.real), spec.angle())
    names, targets = ["original"], [magnitude]
    for output, (positive, negative) in band_masks.items():
        # An empty side would be silence, and with both sides empty "enhanced" is the original:
        # neither is worth inverting (the report says so instead of playing them).
        has_positive, has_negative = bool(np.any(positive)), bool(np.any(negative))
        p = torch.as_tensor(linear_mask(positive, filterbank, spec.shape[-1]), dtype=torch.float32, device=device)
        n = torch.as_tensor(linear_mask(negative, filterbank, spec.shape[-1]), dtype=torch.float32, device=device)
        if has_positive or has_negative:
            names.append(f"{output}.enhanced")
            targets.append(magnitude * (1.0 + p - n).clamp_min(0.0))
        if has_positive:
            names.append(f"{output}.positive")
            targets.append(magnitude * p)
        if has_negative:
            names.append(f"{output}.negative")
            targets.append(magnitude * n)
    targets = torch.stack(targets)
    with torch.inference_mode():
        by_griffin_lim = griffin_lim(targets, n_iter, momentum, length, seed)
        by_phase = istft(targets * phase, length)
        convergence_gl = spectral_convergence(targets, by_griffin_lim).cpu().numpy()
        convergence_phase = spectral_convergence(targets, by_phase).cpu().numpy()
    out, convergence = {"input": np.asarray(window, dtype=np.float32)}, {}
    for i, name in enumerate(names):
        out[f"{name}.{GRIFFIN_LIM}"] = by_griffin_lim[i].cpu().numpy()
        convergence[f"{name}.{GRIFFIN_LIM}"] = float(convergence_gl[i])
        if name != "original":  # the original with its own phase is the input itself
            out[f"{name}.{ORIGINAL_PHASE}"] = by_phase[i].cpu().numpy()
            convergence[f"{name}.{ORIGINAL_PHASE}"] = float(convergence_phase[i])
    peak = max(float(np.max(np.abs(a))) for a in out.values())
    gain = min(1.0, PEAK / peak) if peak > 0 else 1.0
    out = {k: (a * gain).astype(np.float32) for k, a in out.items()}
    return Resynthesis(audio=out, spectral_convergence=convergence, gain=gain, iterations=n_iter, momentum=momentum)
