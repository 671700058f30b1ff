"""Rich display in Jupyter: ``Prediction._repr_html_`` and ``Explanation._repr_html_``.

One self-contained HTML fragment per object: tables of the values, the effects plot and the
explanation spectrograms as inline base64 PNGs, and ``<audio>`` players with the resyntheses as
inline base64 FLAC (Chrome, Firefox and Safari 11+ play FLAC). Nothing is written next to the
notebook; figures are drawn by the same functions as report.html, into a temporary folder.
"""
from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .labels import EMOTION_NAMES, MIDLEVEL_NAMES

STYLE = ("<style>.twolevel table{border-collapse:collapse;margin:4px 12px 8px 0;display:inline-table;"
         "vertical-align:top}.twolevel td,.twolevel th{padding:1px 8px;text-align:left}"
         ".twolevel .bar{display:inline-block;height:9px;background:#4c72b0}"
         ".twolevel img{max-width:100%}</style>")


def png_data_uri(draw: Callable[[Path], Path]) -> str:
    """``data:image/png;base64,...`` of the figure ``draw(path)`` saves (into a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="twolevel-nb-") as tmp:
        path = draw(Path(tmp) / "figure.png")
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _value_table(title: str, values: dict, names) -> str:
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{values[n]:.3f}</td>"
                   f"<td><span class='bar' style='width:{max(0.0, min(1.0, values[n])) * 80:.0f}px'></span></td></tr>"
                   for n in names)
    return f"<table><tr><th colspan=3>{html.escape(title)}</th></tr>{rows}</table>"


def _effects_uri(effects_dict: dict, title: str) -> str:
    from .effects import Effects
    from .plots import effects_plot

    return png_data_uri(lambda path: effects_plot(Effects.from_dict(effects_dict), path, title=title))


def prediction_html(prediction) -> str:
    """HTML of a :class:`~twolevel.Prediction`: emotions and mid-levels, windows, effects plot."""
    d = prediction.to_dict()
    e = html.escape
    head = (f"<b>{e(str(d['name']))}</b> &mdash; {d['duration']:.1f} s, {len(d['windows'])} window(s), "
            f"model <code>{e(str(d['model_version']))}</code>")
    tables = (_value_table("emotions", d["emotions"], EMOTION_NAMES)
              + _value_table("mid-level features", d["midlevels"], MIDLEVEL_NAMES))
    windows = ""
    if len(d["windows"]) > 1:
        cols = list(EMOTION_NAMES)
        rows = "".join("<tr>" + f"<td>{w['start']:.1f} s</td>"
                       + "".join(f"<td>{w['emotions'][c]:.2f}</td>" for c in cols) + "</tr>"
                       for w in d["windows"])
        windows = ("<details><summary>per 10 s window</summary><table><tr><th>start</th>"
                   + "".join(f"<th>{e(c)}</th>" for c in cols) + f"</tr>{rows}</table></details>")
    plot = _img(_effects_uri(d["effects"], str(d["name"])), "effects plot: weight x mid-level value per emotion")
    return f"<div class='twolevel'>{STYLE}<p>{head}</p>{tables}{windows}<div>{plot}</div></div>"


def explanation_html(explanation) -> str:
    """HTML of an :class:`~twolevel.explain.Explanation`: predictions, effects plot, input and
    explanation spectrograms, the selections, and players for the resynthesised audio."""
    from .explain.explanation import decode_array
    from .report import explanation_figure, spectrogram_figure

    d = explanation.to_dict(include_audio=True)
    e = html.escape
    spec = decode_array(d["spectrogram"]).astype(np.float32)
    labels = decode_array(d["segments"]).astype(np.int64)
    band_hz = np.asarray(d["spectrogram"].get("band_frequencies_hz") or [], dtype=np.float64)
    duration = float(d["window"]["duration"])
    name = str(d.get("name", "clip"))
    head = (f"<b>{e(name)}</b> &mdash; explaining <b>{e(d['target'])}</b> on "
            f"{d['window']['offset']:.1f}&ndash;{d['window']['offset'] + duration:.1f} s "
            f"({d['parameters']['n_samples']:,} samples, {d['segments']['n_segments']} segments)")
    preds = d["predictions"]
    tables = (_value_table("emotions", preds["emotions"], EMOTION_NAMES)
              + _value_table("mid-level features", preds["midlevels"], MIDLEVEL_NAMES))
    parts = [STYLE, f"<p>{head}</p>", tables,
             f"<div>{_img(_effects_uri(d['effects'], name), 'effects plot')}</div>",
             _img(png_data_uri(lambda p: spectrogram_figure(spec, labels, band_hz, duration, p, name)),
                  "input spectrogram and its segments")]
    r2 = d["surrogate"]["r2"]
    for sel in d["selections"]:
        fit = r2.get(sel["output"])
        what = ("empty selection: no segment passed the threshold" if sel["empty"] else
                f"{len(sel['positive'])} positive, {len(sel['negative'])} negative segments")
        parts.append(f"<h4>{e(sel['output'])} ({e(sel['role'])}): {what}; surrogate R&sup2; "
                     f"{'n/a' if fit is None else f'{fit:.3f}'}</h4>")
        parts.append(_img(png_data_uri(lambda p, s=sel: explanation_figure(spec, labels, s, band_hz, duration, p)),
                          f"{sel['output']}: positive and negative explanation spectrograms"))
    audio = d.get("audio") or {}
    if audio:
        rows = "".join(f"<tr><td>{e(k)}</td><td><audio controls preload='none' "
                       f"src='data:audio/flac;base64,{v}'></audio></td></tr>" for k, v in audio.items())
        parts.append(f"<h4>listen</h4><table>{rows}</table>")
    else:
        parts.append("<p><i>no resynthesised audio (explained with resynthesis=False)</i></p>")
    return "<div class='twolevel'>" + "".join(parts) + "</div>"
