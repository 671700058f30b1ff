"""Jupyter display: Prediction and Explanation render as self-contained HTML with their tables,
inline PNGs (effects plot, explanation spectrograms) and audio players."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, list[dict]] = {}

    def handle_starttag(self, tag, attrs):
        self.tags.setdefault(tag, []).append(dict(attrs))


def parse(page: str) -> dict:
    collector = Collect()
    collector.feed(page)
    collector.close()
    return collector.tags


def png_sources(tags: dict) -> list[bytes]:
    found = []
    for img in tags.get("img", []):
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        found.append(data)
    return found


def test_prediction_html_has_tables_and_the_effects_plot(tiny_model, example_clip):
    pred = tiny_model.predict(example_clip)
    page = pred._repr_html_()
    tags = parse(page)
    assert len(png_sources(tags)) == 1  # the effects plot
    for name in EMOTION_NAMES + MIDLEVEL_NAMES:
        assert re.search(rf"<td>{name}</td><td>{pred.to_dict()[('emotions' if name in EMOTION_NAMES else 'midlevels')][name]:.3f}</td>", page)
    assert "per 10 s window" in page  # the 15 s example has 2 windows
    assert "<script" not in page


def test_explanation_html_has_spectrograms_and_players(tiny_model, example_clip):
    from twolevel.explain import explain

    exp = explain(tiny_model, tiny_model.load_audio(example_clip), target="energy", n_samples=700, seed=0,
                  batch_size=64, griffin_lim_iters=4, resynthesis=True)
    page = exp._repr_html_()
    tags = parse(page)
    pngs = png_sources(tags)
    # effects plot + input spectrogram + one explanation figure per selection (energy and its 3 mid-levels)
    assert len(pngs) == 2 + len(exp.selections) and len(exp.selections) == 4
    players = tags.get("audio", [])
    assert players and len(players) == len(exp.resynthesis.audio)
    for player in players:
        assert "controls" in player
        data = base64.b64decode(player["src"].split(",", 1)[1], validate=True)
        assert player["src"].startswith("data:audio/flac;base64,") and data[:4] == b"fLaC"
    for sel in exp.selections:
        assert f"{sel.output} (" in page


def test_explanation_without_audio_says_so(tiny_model, example_clip):
    from twolevel.explain import explain

    exp = explain(tiny_model, tiny_model.load_audio(example_clip), target="articulation", n_samples=700, seed=0,
                  batch_size=64, resynthesis=False)
    page = exp._repr_html_()
    assert "<audio" not in page and "no resynthesised audio" in page
    assert len(png_sources(parse(page))) == 3
