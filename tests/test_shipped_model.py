"""The shipped checkpoint: what its model card promises, and that it is the trained model.

The evaluation here runs on clips the shipped model trained on, so it only tells a trained model
from an untrained or mis-wired one (an untrained model scores about 0); the honest accuracy is
the cross-validation table in twolevel/assets/MODEL_CARD.md.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from twolevel.checkpoint import default_model_path, load_checkpoint, weights_digest
from twolevel.labels import EMOTION_NAMES
from twolevel.resources import MODEL_CARD_FILE, asset_path

CARD = asset_path(MODEL_CARD_FILE)


@pytest.fixture(scope="module")
def shipped():
    path = default_model_path()
    if not path.is_file():
        pytest.skip("no shipped model")
    return path, load_checkpoint(path, device="cpu")


def test_shipped_checkpoint_fits_the_archive_and_names_its_training(shipped):
    path, model = shipped
    assert path.stat().st_size <= 25e6
    meta = model.metadata
    # All 300 excerpts trained on (last epoch, no validation part), plus the unrated corpus windows
    # its teachers labelled: a distilled student (MODEL_CARD.md, "Training").
    assert meta["n_clips"] == 300 and meta["n_val"] == 0
    # Three trunks (MODEL_CARD.md, "Training"), each a student distilled from the same 4 teachers.
    trunks = meta["trunks_of"]
    assert model.config.trunks == len(trunks) == 3
    assert [t["config"]["seed"] for t in trunks] == [9, 19, 49]
    for trunk in trunks:
        distillation = trunk["distillation"]
        assert len(distillation["teachers"]) == 4 and meta["n_train"] == 300 + distillation["items"]
    assert trunks[2]["config"]["modulation_weight"] == 0.15  # the concept trunk
    assert "descriptors v3" in meta["midlevel_targets"]
    assert meta["emotion_layer"] == "least-squares" and meta["emotion_layer_shrinkage"] == 0.004
    cfg = meta["config"]
    assert model.config.width == cfg["width"]
    # The version is stamped from the weights: a swapped file would not match.
    assert model.model_version.endswith(weights_digest(model.state_dict()))


def test_model_card_describes_the_shipped_file(shipped):
    path, model = shipped
    card = CARD.read_text()
    assert f"`{model.model_version}`" in card
    assert f"{path.stat().st_size / 1e6:.2f} MB" in card


def test_shipped_model_evaluates_on_any_subset_of_the_published_layout(soundtracks_dir, shipped, tmp_path):
    """`evaluate` on a folder holding 16 of the excerpts: the published CSV's rows, audio linked."""
    from twolevel_cli.main import cli

    raw = (soundtracks_dir / "mean_ratings_set1.csv").read_bytes()
    lines = raw.split(b"\r\n")
    header, rows = lines[0], [r for r in lines[1:] if r]
    subset = rows[::19][:16]  # every 19th excerpt: all TARGET categories, ids not contiguous
    (tmp_path / "audio").mkdir()
    for row in subset:
        number = row.split(b",")[0].decode()
        (tmp_path / "audio" / f"{number}.mp3").symlink_to(soundtracks_dir / "audio" / f"{number}.mp3")
    (tmp_path / "mean_ratings_set1.csv").write_bytes(b"\r\n".join([header, *subset]) + b"\r\n")

    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert set(payload) == {"emotions", "average", "n"} and payload["n"] == 16
    assert list(payload["emotions"]) == list(EMOTION_NAMES)
    # Clips it trained on: a trained model correlates well; an untrained one scores about 0.
    assert payload["average"] > 0.6, payload
