"""The GPU path: front end, explanation and Griffin-Lim on CUDA agree with the CPU.

Skipped without CUDA. ``TWOLEVEL_CHECK_DEVICE=cpu`` runs the same comparisons with the CPU in
the device's place (a dry run of ``benchmarks/gpu_check.sh`` on a machine without a GPU).

Tolerances (stated, float32 on both sides): the log-filterbank spectrogram within 1e-3
absolute (cuFFT-free nnAudio convolutions sum in another order; values are O(1) after
normalisation), the 15 outputs within 1e-3 absolute, Griffin-Lim audio within 1e-3 (same
initial phase, drawn on the CPU; ~60 FFT round trips accumulate rounding), and the selected
segments of a 2,000-sample explanation at Jaccard >= 0.9 (segments whose p-value sits on the
threshold may flip on rounding). fp16 against fp32 (CUDA only, the shipped model): coefficients
apart by under 0.1 standard errors (median; measured 0.005 on an H200), selections Jaccard >= 0.9.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from twolevel.explain import explain
from twolevel.explain.resynthesis import griffin_lim, stft
from twolevel.explain.selection import jaccard
from twolevel.predict import TwoLevelModel
from twolevel.signal import SAMPLE_RATE, WINDOW_SAMPLES


def _device() -> str:
    forced = os.environ.get("TWOLEVEL_CHECK_DEVICE")
    if forced:
        return forced
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (set TWOLEVEL_CHECK_DEVICE=cpu for a dry run of these comparisons)")
    return "cuda"


@pytest.fixture(scope="module")
def device() -> str:
    return _device()


@pytest.fixture(scope="module")
def models(tiny_checkpoint, device):
    return TwoLevelModel.load(tiny_checkpoint, device="cpu"), TwoLevelModel.load(tiny_checkpoint, device=device)


def test_frontend_on_device_equals_cpu(models, example_clip, device):
    cpu, dev = models
    audio = cpu.load_audio(example_clip).samples[:WINDOW_SAMPLES]
    batch = torch.from_numpy(np.stack([audio, audio[::-1].copy()]))
    with torch.inference_mode():
        on_cpu = cpu.network.frontend(batch)
        on_dev = dev.network.frontend(batch.to(device)).cpu()
    assert on_dev.shape == on_cpu.shape == (2, 1, on_cpu.shape[2], 149)
    assert torch.isfinite(on_dev).all()
    torch.testing.assert_close(on_dev, on_cpu, rtol=0, atol=1e-3)


def test_predictions_on_device_equal_cpu(models, example_clip):
    cpu, dev = models
    a, b = cpu.predict(example_clip), dev.predict(example_clip)
    np.testing.assert_allclose(b.midlevel_vector, a.midlevel_vector, atol=1e-3)
    np.testing.assert_allclose(b.emotion_vector, a.emotion_vector, atol=1e-3)


def test_explain_on_device_selects_what_the_cpu_selects(models, example_clip, device):
    cpu, dev = models
    audio = cpu.load_audio(example_clip)
    on_cpu = explain(cpu, audio, target="articulation", n_samples=2000, resynthesis=False)
    on_dev = explain(dev, audio, target="articulation", n_samples=2000, resynthesis=True, griffin_lim_iters=8)
    assert on_dev.parameters["device"].startswith(device)
    np.testing.assert_array_equal(on_dev.segmentation.labels, on_cpu.segmentation.labels)
    np.testing.assert_allclose(on_dev.surrogate.coef, on_cpu.surrogate.coef, atol=1e-4)
    for a, b in zip(on_cpu.selections, on_dev.selections):
        assert jaccard(a.signed, b.signed) >= 0.9, a.output
    assert on_dev.resynthesis is not None


def test_fp16_on_device_moves_the_surrogate_less_than_its_sampling_noise(example_clip, device):
    """fp16 changes each surrogate coefficient by a small part of its standard error (what redrawing
    the samples would change it by) and keeps the selections. On the shipped model: a randomly
    initialised one barely responds to its input, so fp16's rounding is all its coefficients say."""
    if device != "cuda":
        pytest.skip("fp16 runs on CUDA only (the CPU refuses it: tests/test_explain_sampling.py)")
    model = TwoLevelModel.load(device=device)
    audio = model.load_audio(example_clip)
    runs = {p: explain(model, audio, samples=2000, precision=p, resynthesis=False) for p in ("fp32", "fp16")}
    assert runs["fp16"].parameters["precision"] == "fp16"
    for name, value in runs["fp32"].midlevels.items():
        assert runs["fp16"].midlevels[name] == pytest.approx(value, abs=0.01)
    fp32, fp16 = runs["fp32"].surrogate, runs["fp16"].surrogate
    in_stderrs = np.abs(fp16.coef - fp32.coef) / fp32.stderr
    assert np.median(in_stderrs) < 0.1 and np.quantile(in_stderrs, 0.95) < 0.5
    overlaps = [jaccard(a.signed, b.signed) for a, b in zip(runs["fp32"].selections, runs["fp16"].selections)]
    assert np.mean(overlaps) >= 0.9


def test_griffin_lim_on_device_equals_cpu(device):
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    signal = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    magnitude = stft(torch.from_numpy(signal)[None]).abs()
    on_cpu = griffin_lim(magnitude, 16, 0.99, WINDOW_SAMPLES, seed=0)
    on_dev = griffin_lim(magnitude.to(device), 16, 0.99, WINDOW_SAMPLES, seed=0)
    assert on_dev.device.type == torch.device(device).type
    torch.testing.assert_close(on_dev.cpu(), on_cpu, rtol=0, atol=1e-3)


@pytest.mark.parametrize("n_samples, batch_size", [(1, 256), (100, 256), (700, 256), (513, 512)])
def test_perturbation_outputs_on_device_equal_cpu(models, example_clip, n_samples, batch_size):
    """Odd-sized and last batches (padded to fixed sizes on a GPU) give every sample its own outputs."""
    from twolevel.explain.explainer import _spectrogram_and_segments, explain_window
    from twolevel.explain.sampling import run_perturbations, sample_switches

    cpu, dev = models
    window = _spectrogram_and_segments(cpu.network, *explain_window(cpu.load_audio(example_clip).samples, 0.0))
    switches = sample_switches(n_samples, window.segmentation.n_segments, seed=3, design="independent")
    args = (window.spectrogram, window.segmentation.labels, switches, 0.0, batch_size)
    on_cpu = run_perturbations(cpu.network.eval(), *args)
    on_dev = run_perturbations(dev.network.eval(), *args)
    assert on_dev.shape == on_cpu.shape == (n_samples, 15)
    np.testing.assert_allclose(on_dev, on_cpu, rtol=0, atol=1e-3)


def test_warm_up_runs_every_gpu_batch_shape(models, device):
    from twolevel.explain.sampling import gpu_batch_rows, warm_up

    expected = gpu_batch_rows(512) if torch.device(device).type == "cuda" else []
    network = models[1].network
    calls = []
    hook = network.frontend.register_forward_hook(lambda module, args, out: calls.append(tuple(out.shape)))
    try:
        assert warm_up(network, 512) == expected
    finally:
        hook.remove()
    # the front end ran once on a 10 s window (on the GPU only: the CPU needs no warm-up)
    assert len(calls) == (1 if expected else 0) and (not calls or calls[0][-2] >= 313)


def test_surrogate_fit_on_device_equals_cpu(device):
    from twolevel.explain.sampling import sample_switches
    from twolevel.explain.surrogate import fit_surrogate

    switches = sample_switches(5000, 120, seed=1)
    outputs = switches @ np.random.default_rng(1).normal(size=(120, 15)) + np.random.default_rng(2).normal(
        scale=0.5, size=(5000, 15))
    on_cpu, on_dev = fit_surrogate(switches, outputs), fit_surrogate(switches, outputs, device=device)
    np.testing.assert_allclose(on_dev.coef, on_cpu.coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(on_dev.pvalues, on_cpu.pvalues, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(on_dev.r2, on_cpu.r2, rtol=1e-10)
