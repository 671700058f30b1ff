"""The fast inference path (folded batch norms, channels_last) and the allocator settings."""
from __future__ import annotations

import platform

import torch

from twolevel import runtime
from twolevel.model import A2Mid2EJoint, ModelConfig


def _trained_like(width: float = 0.125) -> A2Mid2EJoint:
    torch.manual_seed(0)
    net = A2Mid2EJoint(ModelConfig(width=width))
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for module in net.features:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _reference(net: A2Mid2EJoint, spec: torch.Tensor) -> torch.Tensor:
    """The module as trained, layer by layer, in eval mode."""
    with torch.no_grad():
        mid = net.midlevel(net.pool(net.features(spec)).flatten(1))
        return torch.cat([mid, net.emotion(mid)], 1)


def test_inference_path_equals_the_trained_module():
    net = _trained_like()
    spec = torch.randn(3, 1, 313, 149)
    with torch.inference_mode():
        fast = torch.cat(net.forward_spectrogram(spec), 1)
    assert fast.shape == (3, 15)
    torch.testing.assert_close(fast, _reference(net, spec), rtol=1e-4, atol=1e-5)
    stack = net.inference_features()
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in stack)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in stack
               if isinstance(m, torch.nn.Conv2d))


def test_inference_stack_is_rebuilt_when_weights_change_and_never_saved():
    net = _trained_like()
    spec = torch.randn(2, 1, 313, 149)
    with torch.inference_mode():
        net.forward_spectrogram(spec)
    first = net.inference_features()
    assert net.inference_features() is first  # cached while nothing changes
    keys = set(net.state_dict())
    other = _trained_like()
    with torch.no_grad():
        other.features[0].weight.mul_(-1.0)
    net.load_state_dict(other.state_dict())
    assert net.inference_features() is not first
    with torch.inference_mode():
        torch.testing.assert_close(torch.cat(net.forward_spectrogram(spec), 1), _reference(other, spec),
                                   rtol=1e-4, atol=1e-5)
    assert set(net.state_dict()) == keys
    assert not any("inference" in name for name, _ in net.named_modules())


def test_training_mode_and_autograd_use_the_module_itself():
    net = _trained_like().train()
    spec = torch.randn(4, 1, 313, 149, requires_grad=True)
    mid, emo = net.forward_spectrogram(spec)
    (mid.sum() + emo.sum()).backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    assert net.features[1].num_batches_tracked.item() == 1  # batch norm ran in training mode


def test_allocator_is_tuned_once_on_glibc(monkeypatch):
    A2Mid2EJoint(ModelConfig(width=0.125))
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert runtime.allocator_tuned() is glibc
    assert runtime.tune_allocator() is glibc  # idempotent


def test_allocator_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(runtime, "_state", {})
    monkeypatch.setenv("TWOLEVEL_MALLOPT", "0")
    assert runtime.tune_allocator() is False
    assert runtime.allocator_tuned() is False
