"""The report: built from the Explanation alone (also one decoded from its JSON); every referenced file exists; valid HTML."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from twolevel.explain import Explanation, explain
from twolevel.explain.planted import PlantedModel, planted_audio
from twolevel.report import write_report


class Collector(HTMLParser):
    """Collects tags, src/href targets and checks that non-void tags are closed in order."""

    VOID = {"meta", "img", "br", "link", "input", "source", "hr"}

    def __init__(self):
        super().__init__()
        self.tags, self.links, self.stack, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href"):
                self.links.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def parse(path: Path) -> Collector:
    parser = Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed tags {parser.stack}"
    return parser


@pytest.fixture(scope="module")
def explanation():
    audio, frames, bands = planted_audio()
    return explain(PlantedModel(frames=frames, bands=bands), audio, target="energy", n_samples=1000, seed=0,
                   griffin_lim_iters=8)


def test_report_from_a_dict_with_audio(explanation, tmp_path):
    data = json.loads(json.dumps(explanation.to_dict(include_audio=True), allow_nan=False))  # as over HTTP
    report = write_report(Explanation.from_dict(data), tmp_path / "out", audio_format="flac")
    assert report.name == "report.html"
    page = parse(report)
    assert page.links, "the report references no file"
    for link in page.links:
        assert (report.parent / link).is_file(), f"missing {link}"
    for name in data["audio"]:  # a player for every resynthesis
        assert f"{name}.flac" in page.links
    assert page.tags.count("audio") == len(data["audio"])
    assert page.tags.count("img") == 2 + 2 * len(data["selections"])  # effects, spectrogram; per output 2
    record = json.loads((report.parent / "explanation.json").read_text())
    assert "audio" not in record and record["files"]["audio"]
    text = report.read_text()
    for word in ("energy", "effects.png", "spectrogram.png", "n_samples", "Deletion check"):
        assert word in text


def test_report_without_audio_and_wav(explanation, tmp_path):
    report = write_report(Explanation.from_dict(explanation.to_dict()), tmp_path)
    page = parse(report)
    assert "audio" not in page.tags
    for link in page.links:
        assert (tmp_path / link).is_file()
    assert "No audio" in report.read_text()


def test_save_writes_wav_and_round_trips(explanation, tmp_path):
    report = explanation.save(tmp_path)
    page = parse(report)
    wavs = {link for link in page.links if link.endswith(".wav")}
    assert len(wavs) == len(explanation.resynthesis.audio)
    for link in page.links:
        assert (tmp_path / link).is_file()
    again = Explanation.from_dict(explanation.to_dict(include_audio=True))
    np.testing.assert_allclose(again.spectrogram, explanation.spectrogram, atol=2e-3)  # float16 in JSON
    np.testing.assert_array_equal(again.segmentation.labels, explanation.segmentation.labels)
    np.testing.assert_array_equal(again.surrogate.coef, explanation.surrogate.coef)
    assert set(again.resynthesis.audio) == set(explanation.resynthesis.audio)
    a, b = again.resynthesis.audio["input"], explanation.resynthesis.audio["input"]
    assert np.max(np.abs(a - b)) < 1e-4  # 16-bit FLAC
