"""Several trained models as one (twolevel/trunks.py, ``twolevel-cli merge``): exact mean of their mid-levels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synthetic import write_soundtracks_layout
from twolevel.checkpoint import load_checkpoint, save_checkpoint
from twolevel.emotion_layer import least_squares_layer
from twolevel.errors import CheckpointError, OptionError
from twolevel.labels import MIDLEVEL_NAMES
from twolevel.model import A2Mid2EJoint, ModelConfig, multiply_adds, trunks_one_after_another
from twolevel.training import predict_spectrograms
from twolevel.trunks import merge_trunks, merged_description, renormalised


def trained_like(seed: int, width: float = 0.125, mean: float = 1.0, trunks: int = 1) -> A2Mid2EJoint:
    """A model with random weights *and* random batch-norm statistics (as training leaves them)."""
    torch.manual_seed(seed)
    model = A2Mid2EJoint(ModelConfig(width=width, trunks=trunks), mean=mean, std=0.5)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    model.model_version = f"test-seed{seed}"
    model.metadata = {"config": {"seed": seed, "descriptors": "v3"}, "test_ids": ["001", "002"], "n_clips": 300,
                      "seconds": 100.0 + seed}
    return model.eval()


def outputs(model: A2Mid2EJoint, spec: torch.Tensor, autograd: bool = False):
    if autograd:  # the convolution stack as trained (no folded batch norms)
        with torch.enable_grad():
            return tuple(t.detach() for t in model.forward_spectrogram(spec))
    with torch.inference_mode():
        return model.forward_spectrogram(spec)


@pytest.fixture(scope="module")
def spec():
    return torch.randn(3, 1, 313, 149, generator=torch.Generator().manual_seed(0))


def test_merged_midlevels_are_the_mean_of_the_inputs(spec):
    a, b = trained_like(1), trained_like(2)
    merged = merge_trunks([a, b])
    assert merged.config.trunks == 2
    mid_a, emo_a = outputs(a, spec)
    mid_b, emo_b = outputs(b, spec)
    mid, emo = outputs(merged, spec)
    assert torch.allclose(mid, (mid_a + mid_b) / 2, atol=1e-5)
    # until a layer is fitted, the emotion layer is the mean of the inputs' layers
    with torch.no_grad():
        mean_layer = (a.emotion.weight + b.emotion.weight) / 2
        assert torch.allclose(emo, mid @ mean_layer.T + (a.emotion.bias + b.emotion.bias) / 2, atol=1e-5)
    # the inference path (batch norms folded into grouped convolutions) equals the module as trained
    assert torch.allclose(outputs(merged, spec, autograd=True)[0], mid, atol=1e-5)
    assert not torch.allclose(mid_a, mid_b)  # the trunks really differ


def test_both_inference_layouts_equal_the_module_as_trained(spec):
    merged = merge_trunks([trained_like(1), trained_like(2), trained_like(3)])
    trained = merged.pool(merged.features(spec.contiguous(memory_format=torch.channels_last))).flatten(1)
    with torch.inference_mode():
        split, grouped = merged.inference_features(True), merged.inference_features(False)
        assert split is not grouped and len(split.stacks) == 3
        assert not any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in split.modules())
        assert any(isinstance(m, torch.nn.Conv2d) and m.groups == 3 for m in grouped.modules())
        for stack in (split, grouped):
            assert torch.allclose(merged.pool(stack(spec)).flatten(1), trained.detach(), atol=1e-5)


def test_the_layout_follows_device_and_precision(spec):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert trunks_one_after_another(cpu) and not trunks_one_after_another(cuda)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not trunks_one_after_another(cpu)
    merged = merge_trunks([trained_like(1), trained_like(2)])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        mid, _ = merged.forward_spectrogram(spec)
    assert set(merged.__dict__["_inference_cache"][1]) == {False}  # bf16 on the CPU ran the grouped stack
    assert torch.allclose(mid.float(), outputs(merged, spec)[0], atol=0.1)


def test_each_input_counts_by_its_trunks(spec):
    a, b, c = trained_like(1), trained_like(2), trained_like(3)
    three = merge_trunks([merge_trunks([a, b]), c])
    assert three.config.trunks == 3
    expected = sum(outputs(m, spec)[0] for m in (a, b, c)) / 3
    assert torch.allclose(outputs(three, spec)[0], expected, atol=1e-5)


def test_cost_is_the_sum_of_the_trunks():
    one = multiply_adds(0.125)
    head = 7 * 8
    assert multiply_adds(0.125, trunks=2) - head == 2 * (one - head)
    assert multiply_adds(0.125, trunks=4) / 1e9 < 0.25  # the budget per 10 s window
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    merged = merge_trunks([trained_like(1), trained_like(2)])
    assert params(merged) == 2 * params(trained_like(1)) - (8 * 7 + 8) - 7  # one emotion layer, one head bias


def test_checkpoint_round_trip_with_its_description(tmp_path, spec):
    a, b = trained_like(9), trained_like(19)
    a.metadata["distillation"] = {"teachers": ["t0.pt", "t1.pt"], "items": 274}
    b.metadata["distillation"] = {"teachers": ["t0.pt", "t1.pt"], "items": 274, "midlevel_teachers": ["a.pt"]}
    merged = merge_trunks([a, b])
    version, meta = merged_description([a, b], merged)
    assert "distillation" not in meta  # they differ, so each trunk keeps its own
    assert [t["distillation"] for t in meta["trunks_of"]] == [a.metadata["distillation"], b.metadata["distillation"]]
    assert version.startswith("a2mid2e-joint-w0.125x2-seed9+19-")
    assert meta["config"] == {"descriptors": "v3"}  # what the inputs share; the seeds differ
    assert [t["model_version"] for t in meta["trunks_of"]] == ["test-seed9", "test-seed19"]
    assert meta["test_ids"] == ["001", "002"] and meta["n_clips"] == 300  # shared by both inputs
    assert "seconds" not in meta  # theirs differ
    assert meta["multiply_adds"] == multiply_adds(0.125, trunks=2)
    path = save_checkpoint(merged, tmp_path / "m.pt", model_version=version, metadata=meta)
    loaded = load_checkpoint(path, device="cpu")
    assert loaded.config.trunks == 2 and loaded.model_version == version
    assert torch.allclose(outputs(loaded, spec)[0], outputs(merged, spec)[0])


def test_checkpoints_from_before_trunks_load_as_one_trunk(tmp_path):
    model = trained_like(1)
    path = save_checkpoint(model, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["trunks"]
    torch.save(payload, path)
    assert load_checkpoint(path, device="cpu").config.trunks == 1
    payload["config"]["trunks"] = 0  # a damaged config: a named error, not a traceback
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path, device="cpu")


def test_models_that_cannot_share_a_spectrogram_are_refused():
    with pytest.raises(OptionError, match="at least 2 models"):
        merge_trunks([trained_like(1)])
    with pytest.raises(CheckpointError, match="network differs") as err:
        merge_trunks([trained_like(1), trained_like(2, width=0.25)])
    assert err.value.code == "cannot_merge"
    with pytest.raises(CheckpointError, match="normalise spectrograms differently"):
        merge_trunks([trained_like(1), trained_like(2, mean=1.5)])
    with pytest.raises(ValueError, match="trunks must be an integer >= 1"):
        A2Mid2EJoint(ModelConfig(trunks=0))


def test_a_renormalised_model_computes_what_it_did_on_its_own_normalisation(spec):
    """Folding another front end into the first layer: the first block's output is the same inside the
    spectrogram (only the zero-padded border frames and bands move), the outputs nearly so."""
    model = trained_like(1, mean=1.0)  # std 0.5
    moved = renormalised(model, mean=1.2, std=0.6)
    assert float(moved.frontend.mean) == pytest.approx(1.2) and float(moved.frontend.std) == pytest.approx(0.6)
    log_spec = spec * 0.5 + 1.0  # what the model's own front end normalised into ``spec``
    theirs = (log_spec - 1.2) / 0.6
    with torch.no_grad():
        block, block_moved = model.features[:2](spec), moved.features[:2](theirs)
    torch.testing.assert_close(block_moved[..., 2:-2, 2:-2], block[..., 2:-2, 2:-2], atol=1e-4, rtol=0)
    assert not torch.allclose(block_moved[..., 0, :], block[..., 0, :], atol=1e-4)  # the padded border
    mid, _ = outputs(model, spec)
    mid_moved, _ = outputs(moved, theirs)
    assert (mid_moved - mid).abs().max() < 0.05 * mid.abs().max()
    assert float(model.frontend.mean) == 1.0  # the input is left as it was


def test_a_specialist_gives_its_midlevels_alone_and_the_others_stay(spec):
    a, b, expert = trained_like(1), trained_like(2), trained_like(3, mean=1.3)
    with pytest.raises(CheckpointError, match="renormalise"):
        merge_trunks([a, expert])
    r = MIDLEVEL_NAMES.index("minorness")
    ab = merge_trunks([a, b])
    merged = merge_trunks([ab, expert], renormalise=True, specialists={1: ["minorness"]})
    assert merged.config.trunks == 3
    mid, _ = outputs(merged, spec)
    mid_ab, _ = outputs(ab, spec)
    mid_expert, _ = outputs(renormalised(expert, 1.0, 0.5), spec)
    others = [i for i in range(len(MIDLEVEL_NAMES)) if i != r]
    torch.testing.assert_close(mid[:, others], mid_ab[:, others], atol=1e-5, rtol=0)
    torch.testing.assert_close(mid[:, r], mid_expert[:, r], atol=1e-5, rtol=0)
    assert not torch.allclose(mid[:, r], mid_ab[:, r], atol=1e-3)
    # the emotion layer's starting point leaves the specialist out
    with torch.no_grad():
        torch.testing.assert_close(merged.emotion.weight, (a.emotion.weight + b.emotion.weight) / 2)


@pytest.mark.parametrize("specialists, message", [
    ({2: ["minorness"]}, "not one of the 2 models"),
    ({1: ["mode"]}, "give mid-levels of"),
    ({0: ["minorness"], 1: ["dissonance"]}, "every model to merge is a specialist"),
])
def test_bad_specialists_are_refused(specialists, message):
    with pytest.raises(OptionError, match=message) as err:
        merge_trunks([trained_like(1), trained_like(2)], specialists=specialists)
    assert err.value.code == "bad_specialist"


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("merge")
    return [save_checkpoint(trained_like(s), base / f"s{s}.pt", model_version=f"test-seed{s}",
                            metadata={"config": {"seed": s}}) for s in (1, 2)]


def test_cli_merge_fits_the_layer_on_the_averaged_midlevels(tmp_path, two_checkpoints):
    pytest.importorskip("soundfile")
    from twolevel.data import load_soundtracks
    from twolevel.training import soundtracks_training_set
    from twolevel_cli.main import cli

    data_dir = write_soundtracks_layout(tmp_path / "data", n=12)
    out = tmp_path / "merged.pt"
    args = ["merge", *map(str, two_checkpoints), "--fit-layer", str(data_dir), "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["trunks"] == 2 and report["emotion_layer_clips"] == 12
    assert report["gmac_per_window"] == pytest.approx(multiply_adds(0.125, trunks=2) / 1e9, abs=1e-4)
    merged = load_checkpoint(out, device="cpu")
    assert merged.metadata["emotion_layer"] == "least-squares" and merged.model_version == report["model_version"]
    # the layer is the least-squares fit of the ratings on the merged model's (averaged) clip mid-levels
    data = soundtracks_training_set(load_soundtracks(data_dir), tmp_path / "cache", midlevel_targets="none")
    mids, emotions = predict_spectrograms(merged, data.specs)
    weight, bias = least_squares_layer(mids, data.emotions)
    assert np.allclose(merged.emotion.weight.detach().double().numpy(), weight, atol=1e-5)
    assert np.allclose(merged.emotion.bias.detach().double().numpy(), bias, atol=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--shrinkage", "0.01"], "give --fit-layer"),
    (["--shrinkage", "-1"], "-1"),
    (["--specialist", "minorness"], "write N=MIDLEVEL"),
    (["--specialist", "3=minorness"], "not one of the 2 models"),
])
def test_cli_merge_refuses_bad_options(tmp_path, two_checkpoints, extra, message):
    from twolevel_cli.main import cli

    result = CliRunner().invoke(cli, ["merge", *map(str, two_checkpoints), "--out", str(tmp_path / "m.pt"), *extra])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.pt").exists()


def test_cli_merge_never_overwrites_an_input(two_checkpoints):
    from twolevel_cli.main import cli

    before = two_checkpoints[0].read_bytes()
    result = CliRunner().invoke(cli, ["merge", *map(str, two_checkpoints), "--out", str(two_checkpoints[0])])
    assert result.exit_code != 0 and "one of the models to merge" in result.output
    assert two_checkpoints[0].read_bytes() == before


def test_pretraining_refuses_another_number_of_trunks(tmp_path):
    from twolevel.checkpoint import init_from_pretrained

    path = save_checkpoint(merge_trunks([trained_like(1), trained_like(2)]), tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match="2 trunks"):
        init_from_pretrained(trained_like(3), path)


def test_cli_merge_refuses_too_few_clips_to_fit(tmp_path, two_checkpoints):
    pytest.importorskip("soundfile")
    from twolevel_cli.main import cli

    data_dir = write_soundtracks_layout(tmp_path / "data", n=6)  # 6 clips, 8 weights per emotion
    result = CliRunner().invoke(cli, ["merge", *map(str, two_checkpoints), "--fit-layer", str(data_dir),
                                      "--out", str(tmp_path / "m.pt"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code != 0 and "fits 8 weights per emotion" in result.output and "got 6" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.pt").exists()


def test_cli_merge_records_a_specialist_in_the_checkpoint(tmp_path, two_checkpoints):
    from twolevel_cli.main import cli

    out = tmp_path / "g.pt"
    result = CliRunner().invoke(cli, ["merge", *map(str, two_checkpoints), "--renormalise", "--specialist",
                                      "2=minorness", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out, device="cpu").metadata
    assert meta["specialists"] == {str(two_checkpoints[1]): ["minorness"]}
    assert meta["renormalised_to"]["std"] == pytest.approx(0.5)
