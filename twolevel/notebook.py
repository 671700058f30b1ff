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


def _effects_uri(effects, title: str) -> str:
    from .plots import effects_plot

    return png_data_uri(lambda path: effects_plot(effects, path, title=title))


def prediction_html(prediction) -> str:
    """HTML of a :class:`~twolevel.Prediction`: emotions and mid-levels, windows, effects plot."""
    p = prediction
    e = html.escape
    head = (f"<b>{e(str(p.name))}</b> &mdash; {p.duration:.1f} s, {len(p.windows)} window(s), "
            f"model <code>{e(str(p.model_version))}</code>")
    tables = (_value_table("emotions", p.emotions, EMOTION_NAMES)
              + _value_table("mid-level features", p.midlevels, MIDLEVEL_NAMES))
    windows = ""
    if len(p.windows) > 1:
        cols = list(EMOTION_NAMES)
        rows = "".join("<tr>" + f"<td>{w.start:.1f} s</td>" + "".join(f"<td>{w.emotions[c]:.2f}</td>" for c in cols)
                       + "</tr>" for w in p.windows)
        windows = ("<details><summary>per 10 s window</summary><table><tr><th>start</th>"
                   + "".join(f"<th>{e(c)}</th>" for c in cols) + f"</tr>{rows}</table></details>")
    plot = _img(_effects_uri(p.effects, str(p.name)), "effects plot: weight x mid-level value per emotion")
    return f"<div class='twolevel'>{STYLE}<p>{head}</p>{tables}{windows}<div>{plot}</div></div>"


def explanation_html(explanation) -> str:
    """HTML of an :class:`~twolevel.explain.Explanation`: predictions, effects plot, input and
    explanation spectrograms, the selections, and players for the resynthesised audio."""
    from .report import explanation_figure, spectrogram_figure
    from .serialize import audio_to_base64
    from .signal import WINDOW_SECONDS

    x = explanation
    e = html.escape
    spec, segmentation, band_hz = x.spectrogram, x.segmentation, np.asarray(x.band_frequencies)
    name = str(x.name)
    head = (f"<b>{e(name)}</b> &mdash; explaining <b>{e(x.target)}</b> on "
            f"{x.offset:.1f}&ndash;{x.offset + WINDOW_SECONDS:.1f} s "
            f"({x.parameters['n_samples']:,} samples, {x.n_segments} segments)")
    tables = (_value_table("emotions", x.emotions, EMOTION_NAMES)
              + _value_table("mid-level features", x.midlevels, MIDLEVEL_NAMES))
    parts = [STYLE, f"<p>{head}</p>", tables,
             f"<div>{_img(_effects_uri(x.effects, name), 'effects plot')}</div>",
             _img(png_data_uri(lambda p: spectrogram_figure(spec, segmentation, band_hz, WINDOW_SECONDS, p, name)),
                  "input spectrogram and its segments")]
    for sel in x.selections:
        r2 = x.output_fit(sel.output)["r2"]
        what = ("empty selection: no segment passed the threshold" if sel.empty else
                f"{len(sel.positive)} positive, {len(sel.negative)} negative segments")
        parts.append(f"<h4>{e(sel.output)} ({e(sel.role)}): {what}; surrogate R&sup2; "
                     f"{f'{r2:.3f}' if np.isfinite(r2) else 'n/a'}</h4>")
        parts.append(_img(png_data_uri(lambda p, s=sel: explanation_figure(spec, segmentation, s, band_hz,
                                                                           WINDOW_SECONDS, p)),
                          f"{sel.output}: positive and negative explanation spectrograms"))
    audio = x.resynthesis.audio if x.resynthesis is not None else {}
    if audio:
        rows = "".join(f"<tr><td>{e(k)}</td><td><audio controls preload='none' src='data:audio/flac;base64,"
                       f"{audio_to_base64(v)}'></audio></td></tr>"
                       for k, v in audio.items())
        parts.append(f"<h4>listen</h4><table>{rows}</table>")
    else:
        parts.append("<p><i>no resynthesised audio (explained with resynthesis=False)</i></p>")
    return "<div class='twolevel'>" + "".join(parts) + "</div>"
