"""samples="auto": rounds, the projection to the cap, the stopping rule, and what explain() records."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twolevel.explain import explain, jaccard, select_segments
from twolevel.explain.adaptive import (DEFAULT_AGREEMENT, converge, projected_selection, round_sizes)
from twolevel.explain.planted import PlantedModel, planted_audio
from twolevel.explain.sampling import sample_switches
from twolevel.explain.surrogate import fit_surrogate
from twolevel.labels import TARGET_NAMES


def test_round_sizes_double_up_to_the_cap():
    assert round_sizes(50_000, 600) == [1563, 3125, 6250, 12500, 25000, 50000]
    assert round_sizes(50_000, 5000) == [6250, 12500, 25000, 50000]
    assert round_sizes(1000, 5000) == [1000]  # never fewer than one round: the cap itself


def test_auto_samples_are_the_start_of_the_fixed_run():
    """sample_switches is prefix-consistent, so auto with seed s is the fixed run's first rows."""
    full = sample_switches(50_000, 301, seed=4)
    for n in (1563, 12_500):
        np.testing.assert_array_equal(sample_switches(n, 301, seed=4), full[:n])


def _linear_outputs(switches: np.ndarray, weights: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = switches @ weights + noise * rng.standard_normal(len(switches))
    out = np.zeros((len(switches), len(TARGET_NAMES)))
    out[:, TARGET_NAMES.index("articulation")] = y
    return out


def test_projection_at_the_cap_is_the_papers_rule():
    switches = sample_switches(4000, 60, seed=1)
    weights = np.linspace(-0.02, 0.02, 60)
    fit = fit_surrogate(switches, _linear_outputs(switches, weights, 0.05))
    i = TARGET_NAMES.index("articulation")
    assert projected_selection(fit, i, 1e-6, cap=4000) == select_segments(fit.coef[i], fit.pvalues[i], 1e-6)
    # Projected to 16x the samples, more (never fewer) weights pass the threshold.
    small, large = (set(sum(projected_selection(fit, i, 1e-6, cap), [])) for cap in (4000, 64_000))
    assert small <= large and len(large) > len(small)


def test_rounds_stop_when_the_selection_settles_and_agree_with_the_cap():
    k, cap = 80, 50_000
    switches = sample_switches(cap, k, seed=2)
    weights = np.zeros(k)
    weights[:10], weights[10:15] = 0.05, -0.05  # 15 clear segments, the rest exactly zero
    outputs = _linear_outputs(switches, weights, 0.02)
    calls = []

    def outputs_for(start, stop):
        calls.append((start, stop))
        return outputs[start:stop]

    result = converge(outputs_for, switches, lambda row0: ["articulation"], 1e-6, cap, 2 * (k + 1))
    conv = result.convergence
    assert conv.converged and conv.n_samples < cap
    assert calls == [(a, b) for a, b in zip([0] + round_sizes(cap, 2 * (k + 1)), round_sizes(cap, 2 * (k + 1)))][
        :len(conv.rounds)]  # each row computed once, round by round
    assert conv.rounds[0].jaccard["articulation"] is None
    assert conv.rounds[-1].jaccard["articulation"] >= DEFAULT_AGREEMENT
    positive, negative = result.selections["articulation"]
    assert set(positive) == set(range(10)) and set(negative) == set(range(10, 15))
    assert result.outputs.shape == (conv.n_samples, len(TARGET_NAMES)) and len(result.switches) == conv.n_samples
    json.dumps(conv.to_dict())


def test_pure_noise_runs_to_the_cap():
    k, cap = 40, 3200
    switches = sample_switches(cap, k, seed=3)
    outputs = _linear_outputs(switches, np.zeros(k), 1.0, seed=5)
    result = converge(lambda a, b: outputs[a:b], switches, lambda row0: ["articulation"], 1e-6, cap, 2 * (k + 1),
                      agreement=1.01)  # never satisfied: every round is drawn
    assert result.convergence.n_samples == cap and result.convergence.converged  # the cap ends it
    assert [r.n_samples for r in result.convergence.rounds] == round_sizes(cap, 2 * (k + 1))


@pytest.fixture(scope="module")
def planted():
    audio, frames, bands = planted_audio()
    return PlantedModel(frames=frames, bands=bands), audio


def test_explain_auto_records_its_rounds(planted, tmp_path):
    model, audio = planted
    exp = explain(model, audio, target="energy", samples="auto", auto_cap=6400, batch_size=32, resynthesis=False)
    params = exp.parameters
    assert params["samples"] == "auto" and params["auto_cap"] == 6400
    adaptive = params["adaptive"]
    assert params["n_samples"] == adaptive["n_samples"] == adaptive["rounds"][-1]["n_samples"] <= 6400
    assert adaptive["projected_to"] == 50_000  # a small cap estimates the paper's 50,000-sample selection
    traced = [s.output for s in exp.selections]
    assert traced[0] == "energy" and len(traced) == 4  # the emotion and its 3 strongest mid-levels
    assert all(set(r["selected"]) == set(traced) for r in adaptive["rounds"])
    for sel in exp.selections:  # the recorded sizes are those of the selections returned
        assert adaptive["rounds"][-1]["selected"][sel.output] == len(sel.positive) + len(sel.negative)
    fixed = explain(model, audio, target="energy", n_samples=params["n_samples"], batch_size=32, resynthesis=False)
    assert fixed.parameters["adaptive"] is None
    np.testing.assert_allclose(exp.surrogate.coef, fixed.surrogate.coef)  # the same samples, the same fit
    assert jaccard(exp.selections[0].signed, fixed.selections[0].signed) >= 0.5
    # projected to 50,000 samples, auto keeps at least what the plain rule keeps at n
    assert fixed.selections[0].signed <= exp.selections[0].signed
    report = exp.save(tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Samples chosen automatically" in page and f"{params['n_samples']:,}" in page
    assert json.loads((tmp_path / "out" / "explanation.json").read_text())["parameters"]["adaptive"]["rounds"]
    assert report


def test_auto_cap_below_what_the_segments_need_is_refused(planted):
    from twolevel.errors import OptionError

    model, audio = planted
    with pytest.raises(OptionError) as err:
        explain(model, audio, samples="auto", auto_cap=20, resynthesis=False)
    assert err.value.code == "bad_samples" and "auto_cap=20" in err.value.message
