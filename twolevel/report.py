"""The level-2 report: one offline HTML page with pictures and audio, built from an explanation dict.

:func:`write_report` needs nothing but the dict from :meth:`twolevel.explain.Explanation.to_dict`
(local) or from the server (which carries the audio as base64 FLAC), so local and remote runs give
the same page. Layout follows the authors' demo: predictions, effects plot, input spectrogram,
positive and negative explanation spectrograms, the p-value vs weight scatter with the selected
segments marked, audio players for every resynthesis, and file names and parameters at the bottom.
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .effects import Effects  # noqa: E402
from .explain.explanation import decode_array, json_safe  # noqa: E402
from .explain.resynthesis import decode_audio, encode_audio  # noqa: E402
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES  # noqa: E402
from .plots import NEGATIVE, POSITIVE, effects_plot, pretty_label, save_figure  # noqa: E402

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


def spectrogram_figure(spec, labels, band_hz, duration, path: Path, title: str) -> Path:
    """Input spectrogram, and the same with the segment boundaries drawn."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharey=True)
    im = _show_spec(axes[0], spec, duration, cmap="magma")
    axes[0].set_title(f"input spectrogram (model input, normalised log magnitude) - {title}")
    fig.colorbar(im, ax=axes[0], pad=0.01)
    _show_spec(axes[1], spec, duration, cmap="gray_r", alpha=0.8)
    edges = np.where(_boundaries(labels), 1.0, np.nan)
    _show_spec(axes[1], edges, duration, cmap="autumn", vmin=0, vmax=1)
    axes[1].set_title(f"{int(labels.max()) + 1} Felzenszwalb segments")
    for ax in axes:
        ax.set_xlabel("time (s)")
    _freq_axis(axes[0], band_hz, spec.shape[1])
    fig.tight_layout()
    return _save(fig, path)


def explanation_figure(spec, labels, selection: dict, band_hz, duration, path: Path) -> Path:
    """Positive and negative explanation: the selected segments at full contrast, the rest faded out."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharey=True)
    vmin, vmax = float(np.min(spec)), float(np.max(spec))
    edges = _boundaries(labels)
    for ax, side, colour in ((axes[0], "positive", POSITIVE), (axes[1], "negative", NEGATIVE)):
        ids = selection[side]
        chosen = np.zeros(int(labels.max()) + 1, dtype=bool)
        chosen[np.asarray(ids, dtype=np.int64)] = True
        mask = chosen[labels]
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
        ax.set_title(f"{pretty_label(selection['output'])}: {side} explanation - {note}", fontsize=10)
        ax.set_xlabel("time (s)")
    _freq_axis(axes[0], band_hz, spec.shape[1])
    fig.tight_layout()
    return _save(fig, path)


def scatter_figure(weights, pvalues, selection: dict, ratio: float, path: Path) -> Path:
    """-log10(p) against surrogate weight for every segment; selected ones marked; the threshold curve."""
    w = np.asarray(weights, dtype=np.float64)
    p = np.asarray([1.0 if v is None else v for v in pvalues], dtype=np.float64)
    score = -np.log10(np.clip(p, 1e-300, 1.0))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(w, score, s=12, c="#bbbbbb", label="segment", zorder=2)
    for side, colour in (("positive", POSITIVE), ("negative", NEGATIVE)):
        ids = np.asarray(selection[side], dtype=np.int64)
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
    ax.set_title(f"{pretty_label(selection['output'])}: segments above the dashed curve are selected", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _bar(value: float) -> str:
    width = int(round(max(0.0, min(1.0, float(value))) * 120))
    return f'<span class="bar" style="width:{width}px"></span>'


def _fmt(value, digits=4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _faithfulness_text(check: dict) -> str:
    parts = []
    for side in ("positive", "negative"):
        c = check.get(side, {}) if check else {}
        if not c or "skipped" in c:
            parts.append(f"{side}: {html.escape(c.get('skipped', 'not run') if c else 'not run')}")
            continue
        verdict = "passed" if c["passed"] else "FAILED"
        parts.append(f"hiding the {c['n_hidden']} {side} segments changes the output by {c['change']:+.4g} "
                     f"(random segments: {c['random_change_mean']:+.4g} &plusmn; {c['random_change_std']:.2g}, "
                     f"{c['n_random']} draws): <b>{verdict}</b>")
    return "<br>".join(parts)


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


def write_report(explanation: dict, out_dir: str | os.PathLike, audio_format: str = "wav") -> Path:
    """Write report.html, its PNGs, audio files and explanation.json into ``out_dir``.

    Args:
        explanation: a dict from :meth:`Explanation.to_dict` (audio under ``"audio"`` as base64 FLAC
            when present; without it the page says there is no audio).
        out_dir: folder to write (created).
        audio_format: ``"wav"`` or ``"flac"`` for the audio files.

    Returns:
        Path of report.html.
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    d = explanation
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = decode_array(d["spectrogram"]).astype(np.float32)
    labels = decode_array(d["segments"]).astype(np.int64)
    band_hz = np.asarray(d["spectrogram"].get("band_frequencies_hz") or [], dtype=np.float64)
    duration = float(d["window"]["duration"])
    name = d.get("name", "clip")
    files: dict[str, list | dict] = {"images": [], "audio": {}}

    def image(path: Path) -> str:
        files["images"].append(path.name)
        return path.name

    effects_png = image(effects_plot(Effects.from_dict(d["effects"]), out / "effects.png", title=name))
    spec_png = image(spectrogram_figure(spec, labels, band_hz, duration, out / "spectrogram.png", name))
    sur = d["surrogate"]
    ratio = float(d["parameters"]["ratio"])
    per_output = []
    for sel in d["selections"]:
        stem = _safe_name(sel["output"])
        expl_png = image(explanation_figure(spec, labels, sel, band_hz, duration, out / f"{stem}.explanation.png"))
        scatter_png = image(scatter_figure(sur["weights"][sel["output"]], sur["pvalues"][sel["output"]], sel, ratio,
                                           out / f"{stem}.scatter.png"))
        per_output.append((sel, expl_png, scatter_png))

    for audio_name, b64 in (d.get("audio") or {}).items():
        path = out / f"{_safe_name(audio_name)}.{audio_format}"
        data = base64.b64decode(b64)
        path.write_bytes(data if audio_format == "flac" else encode_audio(decode_audio(data), "wav"))
        files["audio"][audio_name] = path.name

    record = {k: v for k, v in d.items() if k != "audio"}
    record["files"] = {"report": "report.html", **files, "json": "explanation.json"}
    (out / "explanation.json").write_text(json.dumps(json_safe(record), indent=1))
    page = _render(d, files, effects_png, spec_png, per_output, audio_format)
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return report


def _player(files: dict, audio_name: str, audio_format: str) -> str:
    file = files["audio"].get(audio_name)
    if not file:
        return "<span class='note'>not available</span>"
    src = html.escape(file)
    return (f'<audio controls preload="none"><source src="{src}" type="{AUDIO_MIME[audio_format]}"></audio>'
            f'<br><a href="{src}"><code>{src}</code></a>')


def _render(d: dict, files: dict, effects_png: str, spec_png: str, per_output: list, audio_format: str) -> str:
    e = html.escape
    target, kind = d["target"], d["target_kind"]
    pred = d["predictions"]
    sur = d["surrogate"]
    params = d["parameters"]
    window = d["window"]
    conv = (d.get("resynthesis") or {}).get("spectral_convergence", {})
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Two-level explanation: {e(target)} - {e(d.get('name', ''))}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>Why does the model hear <i>{e(pretty_label(target))}</i> in {e(d.get('name', ''))}?</h1>")
    parts.append(f"<p class='note'>Window {window['offset']:.2f} s to {window['offset'] + window['duration']:.2f} s"
                 f"{' (clip loop-padded to 10 s)' if window.get('loop_padded') else ''}; model "
                 f"<code>{e(str(d.get('model_version')))}</code>; {params['n_samples']:,} LIME samples over "
                 f"{d['segments']['n_segments']} spectrogram segments.</p>")

    # Level 1
    parts.append("<h2>Predictions</h2>")
    rows = []
    for i in range(max(len(EMOTION_NAMES), len(MIDLEVEL_NAMES))):
        row = []
        for names, values in ((EMOTION_NAMES, pred["emotions"]), (MIDLEVEL_NAMES, pred["midlevels"])):
            if i < len(names):
                n = names[i]
                mark = " <b>(target)</b>" if n == target else ""
                row += [e(pretty_label(n)) + mark, f"{values[n]:.3f} {_bar(values[n])}"]
            else:
                row += ["", ""]
        rows.append(row)
    parts.append(_table(rows, ["emotion", "value", "mid-level feature", "value"]))
    parts.append("<h2>Level 1: mid-level effects on the emotions</h2>"
                 "<p class='note'>Each bar is weight x mid-level value of the explainable linear layer; "
                 "bars plus bias sum to the emotion.</p>"
                 f"<img src='{e(effects_png)}' alt='effects plot'>")
    if kind == "emotion":
        traced = [s for s, _, _ in per_output if s["role"] == "via_midlevel"]
        parts.append(f"<p>For <b>{e(pretty_label(target))}</b> the explanation follows the two levels: the mid-levels "
                     "with the largest effects on it for this window, each traced to its segments below: "
                     + ", ".join(f"<b>{e(pretty_label(s['output']))}</b> (effect {s['effect']:+.3f})" for s in traced)
                     + ". The emotion's own surrogate is shown first.</p>")

    # Level 2
    parts.append("<h2>Level 2: the input spectrogram and its segments</h2>"
                 f"<img src='{e(spec_png)}' alt='input spectrogram and segments'>")
    if "input" in files["audio"]:
        parts.append(f"<p>The window as the model heard it: {_player(files, 'input', audio_format)}</p>")
    if files["audio"].get("original.griffinlim"):
        sc = conv.get("original.griffinlim")
        parts.append(f"<p>Original, reconstructed by Griffin-Lim from its magnitude alone "
                     f"(spectral convergence {_fmt(sc, 3)}; what reconstruction itself costs): "
                     f"{_player(files, 'original.griffinlim', audio_format)}</p>")
    if not files["audio"]:
        parts.append("<p class='note'>No audio in this explanation (resynthesis was off or the audio was not "
                     "included).</p>")
    for sel, expl_png, scatter_png in per_output:
        out = sel["output"]
        role = ("the target" if sel["role"] == "target"
                else f"traced for {e(pretty_label(target))} (effect {sel['effect']:+.3f})")
        r2 = sur["r2"].get(out)
        parts.append(f"<h2>{e(pretty_label(out))} <span class='note'>({role})</span></h2>")
        parts.append(f"<p>Surrogate R&sup2; = {_fmt(r2, 4)}, intercept = {_fmt(sur['intercept'].get(out), 4)}; "
                     f"selected with p / |weight| &lt; {params['ratio']:g}: <b>{len(sel['positive'])}</b> positive, "
                     f"<b>{len(sel['negative'])}</b> negative segments.</p>")
        if sel["empty"]:
            parts.append("<p class='empty'>Empty selection: no segment passed the threshold (a valid result: "
                         "no single segment is a clear cause; try more samples or a larger ratio).</p>")
        parts.append(f"<img src='{e(expl_png)}' alt='{e(out)} explanation spectrograms'>")
        parts.append(f"<img src='{e(scatter_png)}' alt='{e(out)} p-value vs weight' style='max-width:640px'>")
        parts.append(f"<p class='note'>Deletion check: {_faithfulness_text(sel.get('faithfulness') or {})}</p>")
        rows = []
        for what, text in AUDIO_KINDS.items():
            row = [e(text)]
            empty_side = (what == "enhanced" and sel["empty"]) or (what in ("positive", "negative") and not sel[what])
            for method in METHODS:
                key = f"{out}.{what}.{method}"
                if empty_side:
                    row.append("<span class='note'>nothing selected: no audio</span>")
                    continue
                row.append(_player(files, key, audio_format)
                           + (f"<br><span class='note'>spectral convergence {_fmt(conv.get(key), 3)}</span>"
                              if key in conv else ""))
            rows.append(row)
        if files["audio"]:
            parts.append(_table(rows, ["resynthesis"] + list(METHODS.values())))

    # Bottom: files, parameters, timings
    parts.append("<h2>Files and parameters</h2>")
    listed = ["report.html", "explanation.json"] + files["images"] + list(files["audio"].values())
    parts.append("<p>Files in this folder: " + ", ".join(f"<a href='{e(f)}'><code>{e(f)}</code></a>" for f in listed)
                 + "</p>")
    flat = []
    for key, value in params.items():
        flat.append([e(key), e(json.dumps(value) if isinstance(value, (dict, list)) else str(value))])
    flat.append(["surrogate", e(sur.get("model", "")) + f"; kernel sqrt(exp(-d&sup2;/{sur['kernel_width']}&sup2;)), "
                 f"d = cosine distance to the unperturbed input; {sur['df_resid']} residual degrees of freedom"])
    if d.get("resynthesis"):
        flat.append(["resynthesis", e(d["resynthesis"].get("definition", ""))])
    if d.get("empty_selections"):
        flat.append(["empty selections", e(", ".join(d["empty_selections"]))])
    if d.get("repeats"):
        rep = d["repeats"]
        text = "; ".join(f"{o}: Jaccard signed {v['signed']:.3f}, positive {v['positive']:.3f}, "
                         f"negative {v['negative']:.3f}" for o, v in rep["outputs"].items())
        flat.append(["repeats", e(f"{rep['runs']} runs with seeds {rep['seeds']}: {text}")])
    parts.append(_table(flat, ["parameter", "value"]))
    timings = d.get("timings") or {}
    parts.append(_table([[e(k), _fmt(v, 4) + ("" if k.endswith("per_second") else " s")] for k, v in timings.items()],
                        ["timing", "value"]))
    parts.append("<p class='note'>Method: Haunschmid, Chowdhury &amp; Widmer, \"Two-level Explanations in Music "
                 "Emotion Recognition\" (2019), LIME on Felzenszwalb segments of the spectrogram.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
