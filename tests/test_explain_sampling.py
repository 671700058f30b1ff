"""Segmentation and perturbation sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from twolevel.explain.planted import PlantedModel, planted_audio
from twolevel.explain.sampling import perturbed_batch, run_perturbations, sample_switches
from twolevel.explain.segments import consecutive_labels, segment_spectrogram


@pytest.fixture(scope="module")
def planted_input():
    audio, frames, bands = planted_audio()
    model = PlantedModel(frames=frames, bands=bands)
    with torch.inference_mode():
        spec = model.network.frontend(torch.from_numpy(audio.samples)[None])[0, 0, :313].numpy()
    return model, spec


def test_segments_start_at_zero_without_gaps(planted_input):
    _, spec = planted_input
    seg = segment_spectrogram(spec)
    assert seg.labels.shape == (313, 149)
    assert seg.labels.min() == 0
    assert set(np.unique(seg.labels)) == set(range(seg.n_segments))
    assert seg.sizes().sum() == 313 * 149 and seg.sizes().min() >= 1
    assert 20 < seg.n_segments < 1000
    assert seg.mask([]).sum() == 0
    assert seg.mask([0]).sum() == seg.sizes()[0]


def test_segmentation_of_a_real_clip_has_about_the_papers_count(tiny_model, example_clip):
    audio = tiny_model.load_audio(example_clip)
    with torch.inference_mode():
        spec = tiny_model.network.frontend(torch.from_numpy(audio.samples[:220500])[None])[0, 0, :313].numpy()
    n = segment_spectrogram(spec).n_segments
    assert 100 <= n <= 600  # the paper: about 300 for 10 s


def test_consecutive_labels():
    labels = np.array([[5, 5, 9], [2, 9, 9]])
    out = consecutive_labels(labels)
    assert out.min() == 0 and out.max() == 2
    assert (out == out[0, 0]).sum() == 2


def test_switches_first_row_all_ones_and_seeded():
    a = sample_switches(100, 30, seed=3)
    assert a.shape == (100, 30) and a.dtype == np.uint8
    assert a[0].all()
    assert set(np.unique(a[1:])) == {0, 1}
    assert 0.4 < a[1:].mean() < 0.6
    np.testing.assert_array_equal(a, sample_switches(100, 30, seed=3))
    assert not np.array_equal(a, sample_switches(100, 30, seed=4))


@pytest.mark.parametrize("design", ["antithetic", "independent"])
def test_switches_are_prefix_consistent_for_every_design(design):
    full = sample_switches(1001, 40, seed=5, design=design)
    for n in (1, 2, 3, 500, 1001):
        np.testing.assert_array_equal(sample_switches(n, 40, seed=5, design=design), full[:n])


def test_antithetic_rows_come_in_complementary_pairs():
    z = sample_switches(1000, 50, seed=2)  # the default design
    np.testing.assert_array_equal(z, sample_switches(1000, 50, seed=2, design="antithetic"))
    assert z[0].all() and not z[1].any()  # pair 0: the input and everything hidden
    np.testing.assert_array_equal(z[2::2], 1 - z[3::2])
    assert 0.45 < z[2:].mean() < 0.55  # each switch on with probability 1/2, as LIME draws them
    assert not np.array_equal(z, sample_switches(1000, 50, seed=2, design="independent"))


def test_unknown_design_is_refused():
    with pytest.raises(ValueError, match="design must be one of antithetic, independent"):
        sample_switches(10, 5, seed=0, design="sobol")


def test_antithetic_keeps_pairwise_interactions_out_of_the_weights():
    """A network with a linear part and pairwise interactions between segments: the fold-over
    design cancels the interactions in the surrogate's weights (exactly with equal sample weights;
    LIME's kernel weighs a pair's two rows a little differently), independent draws let them in."""
    from twolevel.explain.surrogate import fit_surrogate

    rng = np.random.default_rng(0)
    k = 200  # about the paper's segment count, where LIME's kernel weights vary by ~10 %
    linear = rng.normal(size=k)
    pairs = np.triu(rng.normal(size=(k, k)), 1) * 0.5

    def network(z):
        x = 2.0 * z - 1.0  # +-1 coding: the weights of a 0/1 surrogate are then 2 x the linear part
        return x @ linear + ((x @ pairs) * x).sum(axis=1)

    errors = {}
    for design in ("antithetic", "independent"):
        z = sample_switches(8000, k, seed=1, design=design)
        fit = fit_surrogate(z, network(z))
        errors[design] = np.sqrt(np.mean((fit.coef[0] - 2.0 * linear) ** 2))
        if design == "antithetic":
            equal = fit_surrogate(z, network(z), sample_weight=np.ones(len(z)))
            np.testing.assert_allclose(equal.coef[0], 2.0 * linear, atol=1e-9)
    assert errors["antithetic"] < 0.35 * errors["independent"], errors


def test_masks_match_a_slow_reference():
    rng = np.random.default_rng(0)
    spec = rng.normal(size=(13, 7)).astype(np.float32)
    seg = rng.integers(0, 5, size=(13, 7))
    switches = sample_switches(6, 5, seed=1)
    for hide in (0.0, -1.5):
        fast = perturbed_batch(torch.from_numpy(spec), torch.from_numpy(seg), torch.from_numpy(switches), hide)
        assert fast.shape == (6, 1, 13, 7)
        slow = np.empty((6, 13, 7), dtype=np.float32)
        for i in range(6):  # reference: one sample, one cell at a time
            for r in range(13):
                for c in range(7):
                    slow[i, r, c] = spec[r, c] if switches[i, seg[r, c]] else hide
        np.testing.assert_allclose(fast[:, 0].numpy(), slow, atol=1e-6)


def test_run_perturbations_outputs_and_progress(planted_input):
    model, spec = planted_input
    seg = segment_spectrogram(spec)
    switches = sample_switches(50, seg.n_segments, seed=0)
    calls = []
    out = run_perturbations(model.network, spec, seg.labels, switches, batch_size=16,
                            progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (50, 15) and out.dtype == np.float64
    assert calls[-1] == (50, 50) and len(calls) == 4
    with torch.inference_mode():
        mid, emo = model.network.forward_spectrogram(torch.from_numpy(spec)[None, None])
    np.testing.assert_allclose(out[0], torch.cat([mid, emo], 1)[0].double().numpy(), rtol=1e-5)
    # the same outputs whatever the batch size
    np.testing.assert_allclose(out, run_perturbations(model.network, spec, seg.labels, switches, batch_size=7),
                               rtol=1e-5, atol=1e-6)


def test_cpu_batches_all_have_the_full_batch_size(planted_input):
    """One activation shape per process, so the allocator's kept heap is reused (runtime.py):
    the odd-sized last batch of every call, and a call smaller than a batch, are padded."""
    model, spec = planted_input
    seg = segment_spectrogram(spec)
    network = model.network
    seen = []
    original = network.forward_spectrogram

    def spy(x):
        seen.append(x.shape[0])
        return original(x)

    network.forward_spectrogram = spy
    try:
        for rows in (50, 5, 32):
            switches = sample_switches(rows, seg.n_segments, seed=rows)
            out = run_perturbations(network, spec, seg.labels, switches, batch_size=16)
            assert out.shape == (rows, 15)  # the padding never reaches the caller
    finally:
        del network.forward_spectrogram
    assert seen == [16] * (4 + 1 + 2)


def test_gpu_batches_are_padded_to_few_fixed_sizes():
    from twolevel.explain.sampling import gpu_batch_rows, padded_rows

    assert gpu_batch_rows(4096) == [64, 128, 256, 512, 1024, 2048, 4096]
    assert gpu_batch_rows(300) == [64, 128, 256, 300]
    assert gpu_batch_rows(10) == [10]
    for batch_size in (10, 256, 300, 4096):
        for rows in {min(r, batch_size) for r in (1, 63, 64, 65, batch_size - 1, batch_size)}:
            padded = padded_rows(rows, batch_size)
            assert rows <= padded <= batch_size and padded in gpu_batch_rows(batch_size)


def test_warm_up_is_a_no_op_on_the_cpu(tiny_checkpoint):
    from twolevel.explain.sampling import warm_up
    from twolevel.predict import TwoLevelModel

    assert warm_up(TwoLevelModel.load(tiny_checkpoint, device="cpu").network, 256) == []


def test_bf16_perturbation_passes_stay_close_to_fp32(example_clip):
    from twolevel.explain import explain
    from twolevel.predict import TwoLevelModel

    model = TwoLevelModel.load(device="cpu")  # the shipped model: a trained network's effects, not a random one's
    audio = model.load_audio(example_clip)
    runs = {p: explain(model, audio, samples=700, precision=p, resynthesis=False) for p in ("fp32", "bf16")}
    assert runs["bf16"].parameters["precision"] == "bf16" and runs["fp32"].parameters["precision"] == "fp32"
    # the unperturbed row's outputs (the predictions the explanation reports) within bf16's rounding
    for name, value in runs["fp32"].midlevels.items():
        assert runs["bf16"].midlevels[name] == pytest.approx(value, abs=0.02)
    coef32, coef16 = runs["fp32"].surrogate.coef, runs["bf16"].surrogate.coef
    assert coef16.shape == coef32.shape
    assert np.corrcoef(coef32.ravel(), coef16.ravel())[0, 1] > 0.99  # the same segments matter (0.9998 measured)
    with pytest.raises(ValueError, match="precision"):
        from twolevel.explain.sampling import autocast

        autocast(torch.device("cpu"), "fp8")


def test_fp16_is_refused_on_the_cpu_before_any_work(example_clip, monkeypatch):
    import twolevel.explain.explainer as explainer
    from twolevel.errors import OptionError
    from twolevel.explain import explain
    from twolevel.predict import TwoLevelModel

    model = TwoLevelModel.load(device="cpu")
    monkeypatch.setattr(explainer, "_spectrogram_and_segments", lambda *a: pytest.fail("work began"))
    with pytest.raises(OptionError) as err:
        explain(model, model.load_audio(example_clip), samples=700, precision="fp16")
    assert err.value.code == "bad_precision" and "CUDA only" in err.value.message and "cpu" in err.value.message


def test_precisions_offered_per_device():
    """What the benchmarks iterate over: every precision on CUDA, all but fp16 elsewhere."""
    from twolevel.options import precision_runs_on, precisions_on

    assert precisions_on("cuda") == ("fp32", "bf16", "fp16")
    assert precisions_on("cpu") == ("fp32", "bf16")
    assert precision_runs_on("cuda", "fp16") and not precision_runs_on("cpu", "fp16")
