"""The level-2 report: one offline HTML page with pictures and audio, built from an :class:`Explanation`.

:func:`write_report` takes the :class:`~twolevel.explain.Explanation` itself, whether
:func:`~twolevel.explain.explain` made it here or the client decoded it from a server's answer,
so local and remote runs give the same page. Layout follows the authors' demo: predictions,
effects plot, input spectrogram, positive and negative explanation spectrograms, the p-value vs
weight scatter with the selected segments marked, audio players for every resynthesis, and file
names and parameters at the bottom. The page is the jinja2 template ``templates/report.html.j2``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jinja2
import matplotlib.colors
import numpy as np

from .explain.surrogate import MODEL_DESCRIPTION
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .signal import WINDOW_SECONDS
from .plots import NEGATIVE, POSITIVE, effects_plot, new_figure, pretty_label, save_figure
from .serialize import encode_audio, json_safe

AUDIO_FORMATS = ("wav", "flac")
AUDIO_MIME = {"wav": "audio/wav", "flac": "audio/flac"}
#: How each resynthesis is described on the page, by the part of its name before the method.
AUDIO_KINDS = {
    "enhanced": "enhanced: original + positive segments again (+6 dB) - negative segments",
    "positive": "positive segments only (what raises the output)",
    "negative": "negative segments only (what lowers it)",
}
METHODS = {"griffinlim": "Griffin-Lim (from magnitude only)", "originalphase": "original phase (exact inversion)"}


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=100)


def _subplots(figsize, ncols: int = 1, **kwargs):
    fig = new_figure(figsize)
    axes = fig.subplots(1, ncols, **kwargs)
    return fig, axes


def _freq_axis(ax, band_hz: np.ndarray, n_bands: int) -> None:
    """Label a band-index y axis with frequencies in Hz."""
    if len(band_hz) != n_bands:
        ax.set_ylabel("band")
        return
    ticks = [t for t in (50, 100, 200, 500, 1000, 2000, 5000, 10000) if band_hz[0] <= t <= band_hz[-1]]
    ax.set_yticks([float(np.interp(t, band_hz, np.arange(n_bands))) for t in ticks],
                  [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
    ax.set_ylabel("frequency (Hz)")


def _show_spec(ax, spec: np.ndarray, duration: float, **kwargs):
    return ax.imshow(spec.T, origin="lower", aspect="auto", extent=(0, duration, -0.5, spec.shape[1] - 0.5),
                     interpolation="nearest", **kwargs)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """True where a cell's segment differs from its right or upper neighbour."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def spectrogram_figure(spec, segmentation, band_hz, duration, path: Path, title: str) -> Path:
    """Input spectrogram, and the same with the boundaries of the :class:`Segmentation` drawn."""
    labels = segmentation.labels
    fig, axes = _subplots((14, 4.2), 2, sharey=True)
    im = _show_spec(axes[0], spec, duration, cmap="magma")
    axes[0].set_title(f"input spectrogram (model input, normalised log magnitude) - {title}")
    fig.colorbar(im, ax=axes[0], pad=0.01)
    _show_spec(axes[1], spec, duration, cmap="gray_r", alpha=0.8)
    edges = np.where(_boundaries(labels), 1.0, np.nan)
    _show_spec(axes[1], edges, duration, cmap="autumn", vmin=0, vmax=1)
    axes[1].set_title(f"{segmentation.n_segments} Felzenszwalb segments")
    for ax in axes:
        ax.set_xlabel("time (s)")
    _freq_axis(axes[0], band_hz, spec.shape[1])
    fig.tight_layout()
    return _save(fig, path)


def explanation_figure(spec, segmentation, selection, band_hz, duration, path: Path) -> Path:
    """Positive and negative explanation of a :class:`Selection`: the selected segments at full
    contrast, the rest faded out."""
    fig, axes = _subplots((14, 4.2), 2, sharey=True)
    vmin, vmax = float(np.min(spec)), float(np.max(spec))
    edges = _boundaries(segmentation.labels)
    for ax, side, colour in ((axes[0], "positive", POSITIVE), (axes[1], "negative", NEGATIVE)):
        ids = getattr(selection, side)
        mask = segmentation.mask(ids)
        _show_spec(ax, spec, duration, cmap="magma", vmin=vmin, vmax=vmax)
        # Fade what is not selected with a white veil, and outline the selected segments in colour.
        veil = np.zeros(spec.shape + (4,))
        veil[~mask] = (1.0, 1.0, 1.0, 0.82)
        rgb = matplotlib.colors.to_rgb(colour)
        veil[edges & mask] = (*rgb, 1.0)
        ax.imshow(np.transpose(veil, (1, 0, 2)), origin="lower", aspect="auto", interpolation="nearest",
                  extent=(0, duration, -0.5, spec.shape[1] - 0.5))
        if not ids:
            ax.text(duration / 2, spec.shape[1] / 2, "empty selection:\nno segment passed the threshold",
                    ha="center", va="center", fontsize=12, color="#444444")
        word = "raise" if side == "positive" else "lower"
        note = f"{len(ids)} segments that {word} it" if ids else "no segment selected (empty selection)"
        ax.set_title(f"{pretty_label(selection.output)}: {side} explanation - {note}", fontsize=10)
        ax.set_xlabel("time (s)")
    _freq_axis(axes[0], band_hz, spec.shape[1])
    fig.tight_layout()
    return _save(fig, path)


def scatter_figure(weights, pvalues, selection, ratio: float, path: Path) -> Path:
    """-log10(p) against surrogate weight for every segment; selected ones marked; the threshold curve.

    Args:
        weights, pvalues: ``(n_segments,)`` of one output's surrogate (a NaN p-value counts as 1).
        selection: that output's :class:`Selection`.
    """
    w = np.asarray(weights, dtype=np.float64)
    p = np.nan_to_num(np.asarray(pvalues, dtype=np.float64), nan=1.0)
    score = -np.log10(np.clip(p, 1e-300, 1.0))
    fig, ax = _subplots((7, 4.5))
    ax.scatter(w, score, s=12, c="#bbbbbb", label="segment", zorder=2)
    for side, colour in (("positive", POSITIVE), ("negative", NEGATIVE)):
        ids = np.asarray(getattr(selection, side), dtype=np.int64)
        if len(ids):
            ax.scatter(w[ids], score[ids], s=22, c=colour, label=f"selected {side} ({len(ids)})", zorder=3)
    span = max(float(np.max(np.abs(w))) if len(w) else 1.0, 1e-12)
    grid = np.linspace(-span, span, 401)
    with np.errstate(divide="ignore"):
        ax.plot(grid, -np.log10(np.clip(ratio * np.abs(grid), 1e-300, None)), color="black", lw=0.8, ls="--",
                label=f"p / |w| = {ratio:g}")
    ax.set_ylim(0, max(float(score.max()) * 1.08 if len(score) else 1.0, 1.0))
    ax.set_xlabel("surrogate weight (output change when the segment is present)")
    ax.set_ylabel("-log10 p-value")
    ax.set_title(f"{pretty_label(selection.output)}: segments above the dashed curve are selected", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _fmt(value, digits=4) -> str:
    """A number for the page: ``digits`` significant digits; None or NaN: ``n/a``."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def _bar_width(value: float) -> int:
    """Pixels of a 0..1 value's bar (120 for 1)."""
    return int(round(max(0.0, min(1.0, float(value))) * 120))


def _param(value) -> str:
    return json.dumps(json_safe(value)) if isinstance(value, (dict, list)) else str(value)


TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("twolevel", "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
TEMPLATES.filters.update(pretty=pretty_label, fmt=_fmt, bar_width=_bar_width, param=_param)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}
.bar{display:inline-block;height:.7em;background:#2f7ed8;vertical-align:middle}
.note{color:#555;font-size:.92em}.empty{color:#b35900;font-weight:bold}audio{width:280px}
code{background:#f4f4f4;padding:0 .2em}
"""


def write_report(explanation, out_dir: str | os.PathLike, audio_format: str = "wav") -> Path:
    """Write report.html, its PNGs, audio files and explanation.json into ``out_dir``.

    Args:
        explanation: an :class:`~twolevel.explain.Explanation` (its resynthesised audio, when it
            has some, becomes the page's players; without it the page says there is no audio).
        out_dir: folder to write (created).
        audio_format: ``"wav"`` or ``"flac"`` for the audio files.

    Returns:
        Path of report.html.
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    exp = explanation
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec, segmentation, band_hz = exp.spectrogram, exp.segmentation, np.asarray(exp.band_frequencies)
    files: dict[str, list | dict] = {"images": [], "audio": {}}

    def image(path: Path) -> str:
        files["images"].append(path.name)
        return path.name

    effects_png = image(effects_plot(exp.effects, out / "effects.png", title=exp.name))
    spec_png = image(spectrogram_figure(spec, segmentation, band_hz, WINDOW_SECONDS, out / "spectrogram.png", exp.name))
    ratio = float(exp.parameters["ratio"])
    per_output = []
    for sel in exp.selections:
        stem = _safe_name(sel.output)
        fit = exp.output_fit(sel.output)
        expl_png = image(explanation_figure(spec, segmentation, sel, band_hz, WINDOW_SECONDS, out / f"{stem}.explanation.png"))
        scatter_png = image(scatter_figure(fit["weights"], fit["pvalues"], sel, ratio, out / f"{stem}.scatter.png"))
        per_output.append((sel, expl_png, scatter_png))

    audio = exp.resynthesis.audio if exp.resynthesis is not None else {}
    for audio_name, samples in audio.items():
        path = out / f"{_safe_name(audio_name)}.{audio_format}"
        path.write_bytes(encode_audio(samples, audio_format))
        files["audio"][audio_name] = path.name

    record = exp.to_dict()
    record["files"] = {"report": "report.html", **files, "json": "explanation.json"}
    (out / "explanation.json").write_text(json.dumps(json_safe(record), indent=1))
    rows = [[(names[i], values[names[i]]) if i < len(names) else (None, None)
             for names, values in ((EMOTION_NAMES, exp.emotions), (MIDLEVEL_NAMES, exp.midlevels))]
            for i in range(max(len(EMOTION_NAMES), len(MIDLEVEL_NAMES)))]
    page = TEMPLATES.get_template("report.html.j2").render(
        exp=exp, files=files, effects_png=effects_png, spec_png=spec_png, per_output=per_output, css=CSS,
        audio_mime=AUDIO_MIME[audio_format], window_seconds=WINDOW_SECONDS, prediction_rows=rows,
        convergence=exp.resynthesis.spectral_convergence if exp.resynthesis is not None else {},
        audio_kinds=AUDIO_KINDS, methods=METHODS, surrogate_model=MODEL_DESCRIPTION,
        listed=["report.html", "explanation.json"] + files["images"] + list(files["audio"].values()))
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return report
