"""The embedding API: load a model once, predict from a path, bytes or an array.

>>> from twolevel import TwoLevelModel
>>> model = TwoLevelModel.load()                # the shipped model, CUDA when available
>>> result = model.predict("clip.mp3")
>>> result.emotions["energy"], result.midlevels["articulation"]
>>> result.effects.contributions                # (8 emotions, 7 mid-levels)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import DEFAULT_MAX_SECONDS, Audio, AudioSource, load_audio, split_windows
from .checkpoint import load_checkpoint
from .effects import Effects
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .signal import SAMPLE_RATE, WINDOW_SECONDS
from .model import A2Mid2EJoint


@dataclass(frozen=True)
class WindowPrediction:
    """Outputs for one 10 s window. ``start``/``end`` in seconds; values keyed by label name."""

    start: float
    end: float
    midlevels: dict[str, float]
    emotions: dict[str, float]

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "midlevels": self.midlevels, "emotions": self.emotions}

    @classmethod
    def from_dict(cls, data: dict) -> "WindowPrediction":
        """Inverse of :meth:`to_dict`."""
        return cls(start=float(data["start"]), end=float(data["end"]),
                   midlevels={m: float(data["midlevels"][m]) for m in MIDLEVEL_NAMES},
                   emotions={e: float(data["emotions"][e]) for e in EMOTION_NAMES})


@dataclass(frozen=True)
class Prediction:
    """A clip's prediction: the mean over its windows, with the per-window results kept.

    ``emotions`` (8) and ``midlevels`` (7) are on the model's 0..1 scale (ratings / 10).
    """

    name: str
    duration: float
    midlevels: dict[str, float]
    emotions: dict[str, float]
    effects: Effects
    windows: list[WindowPrediction] = field(default_factory=list)
    model_version: str = "unknown"

    @property
    def midlevel_vector(self) -> np.ndarray:
        return np.array([self.midlevels[m] for m in MIDLEVEL_NAMES])

    @property
    def emotion_vector(self) -> np.ndarray:
        return np.array([self.emotions[e] for e in EMOTION_NAMES])

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``/predictions`` response body)."""
        return {
            "name": self.name,
            "duration": self.duration,
            "model_version": self.model_version,
            "emotions": self.emotions,
            "midlevels": self.midlevels,
            "effects": self.effects.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Prediction":
        """Inverse of :meth:`to_dict`: the one decoder of a ``/predictions`` answer."""
        return cls(name=str(data["name"]), duration=float(data["duration"]),
                   midlevels={m: float(data["midlevels"][m]) for m in MIDLEVEL_NAMES},
                   emotions={e: float(data["emotions"][e]) for e in EMOTION_NAMES},
                   effects=Effects.from_dict(data["effects"]),
                   windows=[WindowPrediction.from_dict(w) for w in data.get("windows", [])],
                   model_version=str(data.get("model_version", "unknown")))

    def _repr_html_(self) -> str:
        """Jupyter display: value tables and the effects plot (:mod:`twolevel.notebook`)."""
        from .notebook import prediction_html

        return prediction_html(self)


class TwoLevelModel:
    """A loaded A2Mid2E-Joint model with audio in and typed predictions out.

    Args:
        network: the torch module (eval mode, on its device).
        batch_size: windows per forward pass.
        max_seconds: longest accepted input.
    """

    def __init__(self, network: A2Mid2EJoint, batch_size: int = 16, max_seconds: float = DEFAULT_MAX_SECONDS):
        self.network = network.eval()
        self.batch_size = batch_size
        self.max_seconds = max_seconds

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | None = None, **kwargs) -> "TwoLevelModel":
        """Load a checkpoint (default: the shipped model, see :func:`default_model_path`)."""
        return cls(load_checkpoint(path, device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def model_version(self) -> str:
        return getattr(self.network, "model_version", "unknown")

    @property
    def emotion_weight(self) -> np.ndarray:
        """``(8, 7)`` weights of the explainable layer."""
        return self.network.emotion.weight.detach().cpu().double().numpy()

    @property
    def emotion_bias(self) -> np.ndarray:
        """``(8,)`` bias of the explainable layer."""
        return self.network.emotion.bias.detach().cpu().double().numpy()

    def load_audio(self, source: AudioSource, sample_rate: int | None = None, name: str | None = None) -> Audio:
        return load_audio(source, sample_rate=sample_rate, max_seconds=self.max_seconds, name=name)

    @torch.inference_mode()
    def forward_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``(n_windows, samples)`` audio through the network; returns ``(mid (n, 7), emo (n, 8))``."""
        mids, emos = [], []
        for i in range(0, len(windows), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[i : i + self.batch_size])).to(self.device)
            mid, emo = self.network(batch)
            mids.append(mid.double().cpu().numpy())
            emos.append(emo.double().cpu().numpy())
        return np.concatenate(mids), np.concatenate(emos)

    def predict_audio(self, audio: Audio) -> Prediction:
        """Predict from decoded :class:`Audio` (mean over 10 s windows)."""
        windows, starts = split_windows(audio.samples)
        mid, _ = self.forward_windows(windows)
        return self._prediction(audio, mid, starts)

    def predict(self, source: AudioSource, sample_rate: int | None = None, name: str | None = None) -> Prediction:
        """Predict from a path, file bytes, or a samples array (then ``sample_rate`` is required)."""
        return self.predict_audio(self.load_audio(source, sample_rate, name))

    def predict_many(self, audios: list[Audio]) -> list[Prediction]:
        """Predict several decoded clips with their windows batched together (server batching)."""
        cut = [split_windows(a.samples) for a in audios]
        if not cut:
            return []
        mid, _ = self.forward_windows(np.concatenate([w for w, _ in cut]))
        out, at = [], 0
        for audio, (windows, starts) in zip(audios, cut):
            out.append(self._prediction(audio, mid[at : at + len(windows)], starts))
            at += len(windows)
        return out

    def _prediction(self, audio: Audio, mid: np.ndarray, starts: np.ndarray) -> Prediction:
        # Emotions are recomputed from the mid-levels in float64 so that effects sum to them exactly.
        weight, bias = self.emotion_weight, self.emotion_bias
        emo = mid @ weight.T + bias
        windows = [
            WindowPrediction(
                start=float(s / SAMPLE_RATE),
                end=float(min(s / SAMPLE_RATE + WINDOW_SECONDS, max(audio.duration, WINDOW_SECONDS))),
                midlevels=dict(zip(MIDLEVEL_NAMES, map(float, m))),
                emotions=dict(zip(EMOTION_NAMES, map(float, e))),
            )
            for s, m, e in zip(starts, mid, emo)
        ]
        mean_mid = mid.mean(axis=0)
        eff = Effects.from_layer(weight, bias, mean_mid)
        return Prediction(
            name=audio.name,
            duration=audio.duration,
            midlevels=dict(zip(MIDLEVEL_NAMES, map(float, mean_mid))),
            emotions=dict(zip(EMOTION_NAMES, map(float, eff.totals))),
            effects=eff,
            windows=windows,
            model_version=self.model_version,
        )
