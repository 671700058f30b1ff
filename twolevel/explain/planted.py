"""A planted model: a network whose explanation is known by construction (a sanity check for explainers).

Its target output (``articulation`` by default) is the root-mean-square of the input spectrogram
inside one rectangular time-frequency region, so a correct explainer must point at that region
and nowhere else. It exposes the same interface :func:`twolevel.explain.explain` uses
(``.network.forward_spectrogram``, ``.network.frontend``, an ``emotion`` linear layer), and
costs next to nothing to run, so tests can afford the paper's 50,000 samples.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..frontend import Frontend
from ..labels import EMOTION_NAMES, MIDLEVEL_NAMES
from ..signal import N_BANDS, WINDOW_FRAMES


class PlantedNetwork(nn.Module):
    """``forward_spectrogram(spec (B, 1, frames, bands)) -> (mid (B, 7), emo (B, 8))``.

    * ``mid[target]`` = ``sqrt(mean(spec[region]^2))`` (non-linear in the segments, zero when the
      whole region is hidden at hide value 0);
    * ``mid[linear_output]`` = mean of the whole spectrogram (every segment matters, linearly);
    * the other mid-levels are 0 (a constant output: its surrogate must come out empty, not NaN);
    * ``emo = emotion(mid)``, a fixed linear layer, as in A2Mid2E-Joint.

    Args:
        frames, bands: the region, as ``(start, stop)`` index pairs on the model's grid.
        target, linear_output: mid-level names.
        mean, std: normalisation of the front end (0 and 1: the hide value 0 is silence).
    """

    def __init__(self, frames=(100, 200), bands=(40, 100), target: str = "articulation",
                 linear_output: str = "melodiousness", mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.frames, self.bands = tuple(frames), tuple(bands)
        self.target_index = MIDLEVEL_NAMES.index(target)
        self.linear_index = MIDLEVEL_NAMES.index(linear_output)
        self.frontend = Frontend(mean=mean, std=std)
        self.emotion = nn.Linear(len(MIDLEVEL_NAMES), len(EMOTION_NAMES))
        with torch.no_grad():
            grid = torch.arange(len(EMOTION_NAMES) * len(MIDLEVEL_NAMES), dtype=torch.float32)
            self.emotion.weight.copy_(torch.sin(grid).view(len(EMOTION_NAMES), len(MIDLEVEL_NAMES)))
            self.emotion.bias.copy_(torch.linspace(-0.2, 0.2, len(EMOTION_NAMES)))
        self.model_version = "planted"

    @property
    def device(self) -> torch.device:
        return self.emotion.weight.device

    def region_mask(self, shape=(WINDOW_FRAMES, N_BANDS)) -> np.ndarray:
        """Boolean ``(frames, bands)``, True inside the planted region."""
        mask = np.zeros(shape, dtype=bool)
        mask[self.frames[0]:self.frames[1], self.bands[0]:self.bands[1]] = True
        return mask

    def forward_spectrogram(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        region = spec[:, 0, self.frames[0]:self.frames[1], self.bands[0]:self.bands[1]]
        mid = spec.new_zeros(spec.shape[0], len(MIDLEVEL_NAMES))
        mid[:, self.target_index] = region.pow(2).mean(dim=(1, 2)).sqrt()
        mid[:, self.linear_index] = spec.mean(dim=(1, 2, 3))
        return mid, self.emotion(mid)


class PlantedModel:
    """Wraps :class:`PlantedNetwork` like :class:`twolevel.predict.TwoLevelModel` wraps the real one."""

    def __init__(self, network: PlantedNetwork | None = None, **kwargs):
        self.network = (network or PlantedNetwork(**kwargs)).eval()
        self.model_version = "planted"

    @property
    def device(self) -> torch.device:
        return self.network.device


def planted_audio(start_s: float = 3.2, stop_s: float = 6.4, low_hz: float = 400.0, high_hz: float = 2500.0,
                  seed: int = 0):
    """10 s of quiet background with a loud band-limited noise burst, and the burst's region on the grid.

    The background is a soft chord with a little broadband noise (so the spectrogram has structure
    everywhere); the burst fills ``[start_s, stop_s] x [low_hz, high_hz]``.

    Returns:
        ``(audio, frames, bands)``: a :class:`twolevel.audio.Audio` and the region as
        ``(start, stop)`` frame and band index pairs, ready for :class:`PlantedNetwork`.
    """
    from ..audio import Audio
    from ..frontend import band_centre_frequencies
    from ..signal import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES

    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    background = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 3520.0))
    background = background + 0.003 * rng.standard_normal(WINDOW_SAMPLES)
    noise = np.fft.rfft(rng.standard_normal(WINDOW_SAMPLES))
    freqs = np.fft.rfftfreq(WINDOW_SAMPLES, 1 / SAMPLE_RATE)
    noise[(freqs < low_hz) | (freqs > high_hz)] = 0
    burst = np.fft.irfft(noise, WINDOW_SAMPLES)
    burst *= 0.5 / np.max(np.abs(burst))
    burst[(t < start_s) | (t >= stop_s)] = 0
    samples = (background + burst).astype(np.float32)
    centres = band_centre_frequencies()
    inside = np.flatnonzero((centres >= low_hz) & (centres <= high_hz))
    frames = (int(round(start_s * SAMPLE_RATE / HOP_LENGTH)), int(round(stop_s * SAMPLE_RATE / HOP_LENGTH)))
    bands = (int(inside[0]), int(inside[-1]) + 1)
    return Audio(samples, SAMPLE_RATE, SAMPLE_RATE, "planted-burst"), frames, bands
