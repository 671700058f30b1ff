"""The result of a level-2 explanation, and its JSON form.

:class:`Explanation` holds everything needed to show and re-check an explanation: the input
spectrogram, the segment map, the surrogate fits of all 15 outputs, the selections, the
deletion check, the resynthesised audio, parameters and timings. It is what
:func:`twolevel.explain.explain` returns, what :func:`twolevel.report.write_report` takes, and
what the client returns. :meth:`Explanation.to_dict` is its plain-JSON form (what the server
sends; arrays and audio encoded by :mod:`twolevel.serialize`); :meth:`Explanation.from_dict` is
the one decoder of that form.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..effects import Effects
from ..labels import EMOTION_NAMES, MIDLEVEL_NAMES, TARGET_NAMES
from ..serialize import audio_from_base64, audio_to_base64, decode_array, encode_array, json_safe, none_to_nan
from ..signal import HOP_LENGTH, SAMPLE_RATE, WINDOW_SECONDS
from .resynthesis import Resynthesis
from .segments import Segmentation
from .selection import Selection
from .surrogate import MODEL_DESCRIPTION, SurrogateFit

FORMAT = "twolevel-explanation"
FORMAT_VERSION = 1


@dataclass
class Explanation:
    """A level-2 explanation of one 10 s window (see module docstring).

    Attributes:
        name: the clip's name; model_version: the model's.
        target: the output asked for; target_kind: ``"midlevel"`` or ``"emotion"``.
        offset: start of the window in the clip, s; loop_padded: the clip was shorter than 10 s.
        spectrogram: float32 ``(313, 149)`` normalised model input (time x log-frequency band).
        segmentation: the segment map (:class:`Segmentation`).
        surrogate: fits of all 15 outputs (:class:`SurrogateFit`, rows in ``TARGET_NAMES`` order).
        selections: the target's selection first; for an emotion, then one per traced mid-level.
        midlevels, emotions: the unperturbed window's outputs.
        effects: level-1 effects of this window.
        parameters, timings (s): as used / measured.
        resynthesis: audio of the explanations, or None.
        band_frequencies: centre frequency of each band, Hz ``(149,)``.
        repeats: Jaccard stability over reruns with other seeds, or None.
    """

    name: str
    model_version: str
    target: str
    target_kind: str
    offset: float
    loop_padded: bool
    spectrogram: np.ndarray
    segmentation: Segmentation
    surrogate: SurrogateFit
    selections: list[Selection]
    midlevels: dict
    emotions: dict
    effects: Effects
    parameters: dict
    timings: dict
    band_frequencies: np.ndarray
    resynthesis: Resynthesis | None = None
    repeats: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_segments(self) -> int:
        return self.segmentation.n_segments

    @property
    def selection(self) -> Selection:
        """The target's own selection."""
        return self.selections[0]

    def output_fit(self, output: str) -> dict:
        """Weights, p-values, standard errors, intercept and R^2 of one output's surrogate."""
        i = TARGET_NAMES.index(output)
        s = self.surrogate
        return {"weights": s.coef[i], "pvalues": s.pvalues[i], "stderr": s.stderr[i],
                "intercept": float(s.intercept[i]), "r2": float(s.r2[i])}

    @property
    def empty_selections(self) -> list[str]:
        return [s.output for s in self.selections if s.empty]

    def to_dict(self, include_audio: bool = False) -> dict:
        """Plain-JSON form. With ``include_audio``, the resyntheses as base64 FLAC under ``"audio"``."""
        s = self.surrogate
        names = list(TARGET_NAMES)
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "model_version": self.model_version,
            "target": self.target,
            "target_kind": self.target_kind,
            "window": {"offset": self.offset, "duration": WINDOW_SECONDS,
                       "loop_padded": self.loop_padded, "frames": int(self.spectrogram.shape[0]),
                       "bands": int(self.spectrogram.shape[1]), "frame_rate": SAMPLE_RATE / HOP_LENGTH},
            "parameters": self.parameters,
            "predictions": {"midlevels": self.midlevels, "emotions": self.emotions},
            "effects": self.effects.to_dict(),
            "spectrogram": {"description": "normalised log-filterbank spectrogram, the model input (frames x bands)",
                            **encode_array(self.spectrogram, "float16"),
                            "band_frequencies_hz": self.band_frequencies},
            "segments": {"n_segments": self.n_segments, "description": "segment id per (frame, band), from 0",
                         **encode_array(self.segmentation.labels, "uint16"),
                         "segmentation": self.segmentation.parameters()},
            "surrogate": {
                "outputs": names, "n_samples": s.n_samples, "df_resid": s.df_resid, "kernel_width": s.kernel_width,
                "model": MODEL_DESCRIPTION,
                "r2": dict(zip(names, s.r2)), "intercept": dict(zip(names, s.intercept)),
                "intercept_stderr": dict(zip(names, s.intercept_stderr)),
                "intercept_pvalue": dict(zip(names, s.intercept_pvalue)),
                "weights": {n: s.coef[i] for i, n in enumerate(names)},
                "stderr": {n: s.stderr[i] for i, n in enumerate(names)},
                "pvalues": {n: s.pvalues[i] for i, n in enumerate(names)},
            },
            "selections": [sel.to_dict() for sel in self.selections],
            "empty_selections": self.empty_selections,
            "faithfulness": {sel.output: sel.faithfulness for sel in self.selections},
            "resynthesis": self.resynthesis.info() if self.resynthesis is not None else None,
            "timings": self.timings,
            "repeats": self.repeats,
            **self.extra,
        }
        if include_audio and self.resynthesis is not None:
            data["audio"] = {name: audio_to_base64(a) for name, a in self.resynthesis.audio.items()}
        return json_safe(data)

    def _repr_html_(self) -> str:
        """Jupyter display: tables, effects plot, explanation spectrograms, audio players (:mod:`twolevel.notebook`)."""
        from ..notebook import explanation_html

        return explanation_html(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Explanation":
        """Rebuild from :meth:`to_dict` output (audio too, when the dict carries it)."""
        if data.get("format") != FORMAT:
            raise ValueError("not a twolevel explanation dict")
        sur = data["surrogate"]
        names = list(TARGET_NAMES)
        seg_params = data["segments"].get("segmentation", {})
        resynthesis = None
        info = data.get("resynthesis")
        if info is not None and data.get("audio"):
            resynthesis = Resynthesis(
                audio={k: audio_from_base64(v) for k, v in data["audio"].items()},
                spectral_convergence=dict(info.get("spectral_convergence", {})), gain=float(info.get("gain", 1.0)),
                iterations=int(info.get("iterations", 0)), momentum=float(info.get("momentum", 0.0)))
        known = {"format", "format_version", "name", "model_version", "target", "target_kind", "window",
                 "parameters", "predictions", "effects", "spectrogram", "segments", "surrogate", "selections",
                 "empty_selections", "faithfulness", "resynthesis", "timings", "repeats", "audio"}
        return cls(
            name=data["name"], model_version=data.get("model_version", "unknown"),
            target=data["target"], target_kind=data["target_kind"],
            offset=float(data["window"]["offset"]), loop_padded=bool(data["window"]["loop_padded"]),
            spectrogram=decode_array(data["spectrogram"]).astype(np.float32),
            segmentation=Segmentation(decode_array(data["segments"]).astype(np.int64),
                                      scale=seg_params.get("scale", 25.0), min_size=seg_params.get("min_size", 40),
                                      sigma=seg_params.get("sigma", 0.8)),
            surrogate=SurrogateFit(
                coef=np.array([sur["weights"][n] for n in names], dtype=np.float64),
                intercept=none_to_nan(sur["intercept"][n] for n in names),
                stderr=np.array([none_to_nan(sur["stderr"][n]) for n in names]),
                pvalues=np.array([none_to_nan(sur["pvalues"][n]) for n in names]),
                intercept_stderr=none_to_nan(sur["intercept_stderr"][n] for n in names),
                intercept_pvalue=none_to_nan(sur["intercept_pvalue"][n] for n in names),
                r2=none_to_nan(sur["r2"][n] for n in names),
                n_samples=int(sur["n_samples"]), df_resid=int(sur["df_resid"]), kernel_width=float(sur["kernel_width"]),
            ),
            selections=[Selection.from_dict(s) for s in data["selections"]],
            midlevels={m: data["predictions"]["midlevels"][m] for m in MIDLEVEL_NAMES},
            emotions={e: data["predictions"]["emotions"][e] for e in EMOTION_NAMES},
            effects=Effects.from_dict(data["effects"]),
            parameters=dict(data.get("parameters", {})), timings=dict(data.get("timings", {})),
            band_frequencies=np.asarray(data["spectrogram"].get("band_frequencies_hz", []), dtype=np.float64),
            resynthesis=resynthesis, repeats=data.get("repeats"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def save(self, out_dir: str | os.PathLike, audio_format: str = "wav") -> Path:
        """Write report.html, its PNGs and audio files, and explanation.json into ``out_dir``.

        Returns:
            Path of report.html.
        """
        from ..report import write_report  # the report is downstream: imported only when asked for

        return write_report(self, out_dir, audio_format=audio_format)
