"""Model: architecture, label order, checkpoint round trip and clear errors."""
from __future__ import annotations

import pytest
import torch

from twolevel.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from twolevel.errors import CheckpointError
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.signal import WINDOW_FRAMES, WINDOW_SAMPLES
from twolevel.model import A2Mid2EJoint, ModelConfig, multiply_adds


class _Foreign:
    """An arbitrary class: loading it would need unsafe unpickling."""


def test_label_order_matches_the_paper():
    assert MIDLEVEL_NAMES == ("melodiousness", "articulation", "rhythm_stability", "rhythm_complexity",
                              "dissonance", "tonal_stability", "minorness")
    assert EMOTION_NAMES == ("valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender")


def test_paper_architecture_channels_and_layers():
    model = A2Mid2EJoint()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 384, 512, 256]
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3, 3, 3, 3, 3, 3, 1]
    assert convs[0].stride == (2, 2)
    assert model.midlevel.in_features == 256 and model.midlevel.out_features == 7
    assert model.emotion.in_features == 7 and model.emotion.out_features == 8 and model.emotion.bias is not None
    assert 3.5e9 < multiply_adds(1.0) < 4.5e9  # paper: about 4.3 G per 10 s window
    assert multiply_adds(0.25) < multiply_adds(1.0) / 12


@pytest.mark.parametrize("width", [0.125, 0.25])
def test_output_shapes_from_audio_and_spectrogram(width):
    model = A2Mid2EJoint(ModelConfig(width=width)).eval()
    with torch.no_grad():
        mid, emo = model(torch.randn(2, WINDOW_SAMPLES) * 0.1)
        assert mid.shape == (2, 7) and emo.shape == (2, 8)
        spec = model.frontend(torch.randn(1, WINDOW_SAMPLES) * 0.1)[:, :, :WINDOW_FRAMES]
        assert spec.shape == (1, 1, 313, 149)
        mid2, emo2 = model.forward_spectrogram(spec)
        torch.testing.assert_close(emo2, model.emotion(mid2))


def test_emotions_are_one_linear_layer_of_midlevels():
    model = A2Mid2EJoint(ModelConfig(width=0.125)).eval()
    with torch.no_grad():
        mid, emo = model(torch.randn(1, WINDOW_SAMPLES) * 0.1)
    expected = mid @ model.emotion.weight.T + model.emotion.bias
    torch.testing.assert_close(emo, expected)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = A2Mid2EJoint(ModelConfig(width=0.125), mean=1.5, std=0.7).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", model_version="v-test", metadata={"seed": 1})
    loaded = load_checkpoint(path, device="cpu")
    assert loaded.model_version == "v-test" and loaded.metadata == {"seed": 1}
    assert loaded.config == model.config
    assert float(loaded.frontend.mean) == 1.5 and float(loaded.frontend.std) == pytest.approx(0.7)
    x = torch.randn(1, WINDOW_SAMPLES) * 0.1
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b)
    assert read_checkpoint(path)["format_version"] == 1
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves nothing behind


def test_corrupt_foreign_and_missing_checkpoints_give_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a twolevel checkpoint"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "twolevel-checkpoint", "obj": _Foreign()}, pickled)  # needs unsafe unpickling
    with pytest.raises(CheckpointError):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.pt")
