"""explain() on the real (tiny) network, the explain CLI, and its remote path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from twolevel.errors import OptionError
from twolevel.explain import Explanation, explain
from twolevel.labels import MIDLEVEL_NAMES
from twolevel.signal import SAMPLE_RATE, WINDOW_SAMPLES


@pytest.fixture(scope="module")
def tiny_explanation(tiny_model, example_clip):
    audio = tiny_model.load_audio(example_clip)
    calls = []
    exp = explain(tiny_model, audio, target="articulation", n_samples=600, seed=0, batch_size=128, offset=2.0,
                  griffin_lim_iters=4, progress=lambda d, t: calls.append((d, t)))
    return exp, audio, calls


def test_explanation_of_the_real_network(tiny_model, tiny_explanation):
    exp, audio, calls = tiny_explanation
    assert calls[-1] == (600, 600)
    assert exp.target_kind == "midlevel" and exp.offset == 2.0 and not exp.loop_padded
    assert exp.spectrogram.shape == (313, 149)
    assert exp.surrogate.coef.shape == (15, exp.n_segments)
    assert exp.parameters["n_samples"] == 600 and exp.parameters["device"] == "cpu"
    # the unperturbed row is the network's prediction for the window at the offset
    start = int(2.0 * SAMPLE_RATE)
    window = torch.from_numpy(audio.samples[start:start + WINDOW_SAMPLES])[None]
    with torch.inference_mode():
        mid, _ = tiny_model.network(window)
    np.testing.assert_allclose([exp.midlevels[m] for m in MIDLEVEL_NAMES], mid[0].numpy(), rtol=1e-4, atol=1e-6)
    for key in ("segmentation", "sampling", "surrogate", "faithfulness", "resynthesis", "total"):
        assert exp.timings[key] >= 0
    assert exp.resynthesis is not None and "articulation.enhanced.griffinlim" in exp.resynthesis.audio


def test_dict_is_strict_json_and_round_trips(tiny_explanation):
    exp, _, _ = tiny_explanation
    data = exp.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert "audio" not in data
    for key in ("predictions", "effects", "surrogate", "selections", "empty_selections", "faithfulness",
                "parameters", "timings", "segments", "spectrogram", "resynthesis"):
        assert key in data
    assert data["surrogate"]["r2"]["articulation"] is not None
    again = Explanation.from_dict(json.loads(text))
    assert again.selections == exp.selections
    np.testing.assert_array_equal(again.segmentation.labels, exp.segmentation.labels)
    with_audio = exp.to_dict(include_audio=True)
    assert set(with_audio["audio"]) == set(exp.resynthesis.audio)


def test_too_few_samples_names_the_minimum(tiny_model, example_clip):
    audio = tiny_model.load_audio(example_clip)
    with pytest.raises(OptionError) as err:
        explain(tiny_model, audio, target="articulation", n_samples=100)
    assert err.value.code == "bad_samples"
    assert "at least" in err.value.message and "segments" in err.value.message
    with pytest.raises(OptionError) as err:
        explain(tiny_model, audio, target="articulation", n_samples=600, offset=6.0)  # 15 s clip: 0..5 s
    assert err.value.code == "bad_offset"


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """The CLI runs in this process and calls set_threads(): keep it (and later tests) at one thread.

    On 2 shared, busy cores two torch threads spin against each other and everything after the
    CLI test ran many times slower.
    """
    monkeypatch.setenv("TWOLEVEL_THREADS", "1")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cli():
    from twolevel_cli.main import cli

    return cli


def test_cli_explain_writes_the_report(tiny_checkpoint, example_clip, tmp_path):
    out = tmp_path / "exp"
    result = CliRunner().invoke(_cli(), ["explain", str(example_clip), "--target", "articulation", "--samples", "2000",
                                         "--out", str(out), "--model", str(tiny_checkpoint), "--iterations", "2",
                                         "--format", "flac", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["target"] == "articulation"
    assert (out / "report.html").is_file() and (out / "explanation.json").is_file()
    assert (out / "articulation.enhanced.griffinlim.flac").is_file()
    assert summary["report"] == str(out / "report.html")


@pytest.mark.parametrize("args, words", [
    (["--target", "loudness"], "unknown_target"),
    (["--samples", "10"], "bad_samples"),
])
def test_cli_bad_input_is_one_line(tiny_checkpoint, example_clip, tmp_path, args, words):
    result = CliRunner().invoke(_cli(), ["explain", str(example_clip), "--model", str(tiny_checkpoint),
                                         "--out", str(tmp_path), *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and words in lines[0]
    assert "Traceback" not in result.output


def test_cli_not_audio_is_one_line(tiny_checkpoint, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    result = CliRunner().invoke(_cli(), ["explain", str(bad), "--model", str(tiny_checkpoint), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "not_audio" in result.output


def test_cli_endpoint_makes_the_same_report(tmp_path, monkeypatch):
    """--endpoint: the client's Explanation (decoded from JSON, with audio) goes through the same write_report."""
    import twolevel.client
    from twolevel.explain.planted import PlantedModel, planted_audio

    audio, frames, bands = planted_audio()
    model = PlantedModel(frames=frames, bands=bands)
    seen = []

    class FakeClient:
        def __init__(self, endpoint, token=None):
            seen.append((endpoint, token))

        def explain(self, path, target, samples, ratio, seed, design=None, offset=None, include_audio=False):
            exp = explain(model, audio, target=target, n_samples=samples, ratio=ratio, seed=seed,
                          resynthesis=include_audio, griffin_lim_iters=2)
            return Explanation.from_dict(json.loads(json.dumps(exp.to_dict(include_audio=include_audio))))

    monkeypatch.setattr(twolevel.client, "TorchServeClient", FakeClient)
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"unused by the fake client")
    out = tmp_path / "remote"
    result = CliRunner().invoke(_cli(), ["explain", str(clip), "--endpoint", "http://127.0.0.1:9", "--token", "t",
                                         "--target", "articulation", "--samples", "800", "--repeats", "2",
                                         "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert seen == [("http://127.0.0.1:9", "t")]
    record = json.loads((out / "explanation.json").read_text())
    assert record["repeats"]["runs"] == 2 and record["repeats"]["seeds"] == [0, 1]
    assert record["repeats"]["outputs"]["articulation"]["positive"] > 0.5
    assert (out / "articulation.positive.griffinlim.wav").is_file()
    assert "Jaccard" in result.output
