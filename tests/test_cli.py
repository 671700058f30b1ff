"""The level-1 CLI: predict, effects, demo, through click's runner and as a real subprocess."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel_cli.main import cli


@pytest.fixture()
def runner():
    return CliRunner()


def test_predict_json_has_all_labels_in_order(runner, tiny_checkpoint, example_clip, tiny_model):
    result = runner.invoke(cli, ["predict", "--model", str(tiny_checkpoint), "--json", str(example_clip)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["errors"] == []
    (pred,) = data["predictions"]
    assert list(pred["emotions"]) == list(EMOTION_NAMES)
    assert list(pred["midlevels"]) == list(MIDLEVEL_NAMES)
    assert len(pred["windows"]) == 2  # a 15 s clip: two 10 s windows
    expected = tiny_model.predict(example_clip)
    assert pred["emotions"]["energy"] == pytest.approx(expected.emotions["energy"], abs=1e-9)
    assert pred["model_version"] == "tiny-test"


def test_predict_table_and_effects_plots(runner, tiny_checkpoint, example_clip, tmp_path):
    out = tmp_path / "plots"
    result = runner.invoke(cli, ["predict", "--model", str(tiny_checkpoint), "--effects", str(out), str(example_clip)])
    assert result.exit_code == 0, result.output
    for name in ("valence", "articulation", "strongest emotion"):
        assert name in result.output
    png = out / "enemy-unknown.effects.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_bad_file_is_named_and_others_continue(runner, tiny_checkpoint, example_clip, tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all\n" * 50)
    result = runner.invoke(cli, ["predict", "--model", str(tiny_checkpoint), "--json", str(bad), str(example_clip)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert len(data["predictions"]) == 1
    assert data["errors"][0]["error"] == "not_audio" and data["errors"][0]["file"] == str(bad)
    only_bad = runner.invoke(cli, ["predict", "--model", str(tiny_checkpoint), str(bad)])
    assert only_bad.exit_code == 2
    assert "not an audio file" in only_bad.output and "Traceback" not in only_bad.output


def test_bad_checkpoint_is_one_line(runner, tmp_path, example_clip):
    ckpt = tmp_path / "broken.pt"
    ckpt.write_bytes(b"nope")
    result = runner.invoke(cli, ["predict", "--model", str(ckpt), str(example_clip)])
    assert result.exit_code == 1
    assert "Error:" in result.output and "not a readable PyTorch checkpoint" in result.output


def test_effects_command_weights_and_corpus(runner, tiny_checkpoint, tiny_model, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    examples = Path(__file__).resolve().parents[1] / "twolevel" / "examples"
    for name in ("nebula.ogg", "awakening.ogg"):
        shutil.copy(examples / name, corpus / name)
    out = tmp_path / "out"
    result = runner.invoke(cli, ["effects", "--model", str(tiny_checkpoint), "--json", "--out", str(out),
                                 "--corpus", str(corpus)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    weight = tiny_model.emotion_weight
    assert data["weights"]["articulation"]["energy"] == pytest.approx(weight[1, 1])
    assert data["corpus"]["n"] == 2
    mids = np.stack([tiny_model.predict(corpus / n).midlevel_vector for n in ("awakening.ogg", "nebula.ogg")])
    assert data["corpus"]["mean"]["tension"]["minorness"] == pytest.approx((weight[2, 6] * mids[:, 6]).mean())
    assert (out / "weights.png").is_file() and (out / "corpus-effects.png").is_file()


def test_help_teaches(runner):
    result = runner.invoke(cli, ["predict", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--endpoint" in result.output


def test_real_subprocess(tiny_checkpoint, example_clip, tmp_path):
    exe = Path(sys.executable).with_name("twolevel-cli")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "twolevel_cli.main"]
    env = {**os.environ, "TWOLEVEL_MODEL": str(tiny_checkpoint), "TWOLEVEL_THREADS": "1"}
    done = subprocess.run(cmd + ["predict", "--json", str(example_clip)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["model_version"] == "tiny-test"
    missing = subprocess.run(cmd + ["predict", str(tmp_path / "missing.wav")], capture_output=True, text=True,
                             env=env, timeout=300)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_demo_runs_on_given_model(runner, tiny_checkpoint, tmp_path):
    result = runner.invoke(cli, ["demo", "--model", str(tiny_checkpoint), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "nebula.effects.png").is_file() and (tmp_path / "weights.png").is_file()


@pytest.mark.parametrize("endpoint, words", [("not a url", "is not a URL"),
                                             ("http://127.0.0.1:99999", "port must be a number from 1 to 65535")])
def test_bad_endpoint_gets_an_honest_one_line_message(runner, example_clip, endpoint, words):
    """Issue 11 case 7: these said "connection broke off" and "connection refused"."""
    result = runner.invoke(cli, ["predict", "--endpoint", endpoint, "--token", "t", str(example_clip)])
    assert result.exit_code != 0
    assert words in result.output and "bad_endpoint" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_clip_that_resamples_to_nothing_is_reported_not_a_traceback(runner, tiny_checkpoint, tmp_path):
    """Issue 11 case 3 locally: 10 samples at 768 kHz raised ZeroDivisionError."""
    import soundfile as sf

    for name, rate in (("high.wav", 768_000), ("short.wav", 44_100)):
        sf.write(tmp_path / name, np.full(10, 0.5), rate)
    result = runner.invoke(cli, ["predict", "--model", str(tiny_checkpoint), "--json",
                                 str(tmp_path / "high.wav"), str(tmp_path / "short.wav")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    data = json.loads(result.stdout)
    assert [e["error"] for e in data["errors"]] == ["bad_sample_rate", "too_short"]
