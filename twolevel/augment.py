"""Emotion-keeping augmentations of one un-normalised log spectrogram crop ``(frames, 149)``.

They act on the cached ``log10(1 + magnitude)`` spectrogram, so no STFT is re-run:

- gain: the magnitude scaled by ``g`` is ``log10(1 + g (10**s - 1))`` exactly (a louder or softer
  recording of the same music);
- time mask: one block of frames set to silence (0 = ``log10(1 + 0)``), as in SpecAugment;
  the emotion of a 10 s window does not hinge on any one second of it.

Small pitch shifts along the log-frequency axis are :func:`twolevel.training.shift_bands`.
"""
from __future__ import annotations

import torch


def apply_gain(window: torch.Tensor, gain_db: float) -> torch.Tensor:
    """The log spectrogram of the same audio ``gain_db`` louder (magnitude x 10**(gain_db / 20))."""
    if gain_db == 0:
        return window
    g = 10.0 ** (gain_db / 20.0)
    return torch.log10(1.0 + g * (torch.pow(10.0, window) - 1.0).clamp_min(0.0))


def mask_frames(window: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """A copy with frames ``start .. start + length`` silenced."""
    out = window.clone()
    out[start:start + length] = 0.0
    return out


def augment_window(window: torch.Tensor, gen: torch.Generator, gain_db: float = 0.0, time_mask: int = 0
                   ) -> torch.Tensor:
    """A random gain in ``[-gain_db, gain_db]`` dB, then one time mask of ``0 .. time_mask`` frames."""
    if gain_db:
        db = (float(torch.rand((1,), generator=gen)) * 2 - 1) * gain_db
        window = apply_gain(window, db)
    if time_mask:
        length = int(torch.randint(0, time_mask + 1, (1,), generator=gen))
        if length:
            start = int(torch.randint(0, max(1, window.shape[0] - length + 1), (1,), generator=gen))
            window = mask_frames(window, start, length)
    return window
