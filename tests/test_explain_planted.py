"""LIME on a planted model: the target is, by construction, the energy inside one region."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twolevel.errors import OptionError
from twolevel.explain import Explanation, ExplainOptions, explain, jaccard, select_segments
from twolevel.explain.planted import PlantedModel, planted_audio
from twolevel.labels import TARGET_NAMES


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def finds_the_region(positive, labels: np.ndarray, region: np.ndarray) -> bool:
    """The planted-model criterion: IoU >= 0.5 and no positive segment without cells in the region."""
    selected = np.isin(labels, positive)
    inside = set(np.unique(labels[region]).tolist())
    return iou(selected, region) >= 0.5 and all(s in inside for s in positive)


@pytest.fixture(scope="module")
def planted():
    audio, frames, bands = planted_audio()
    return PlantedModel(frames=frames, bands=bands), audio


@pytest.fixture(scope="module")
def default_runs(planted):
    """Two explanations at the paper's 50,000 samples with different seeds (a few seconds each).

    Small batches: the planted network costs nothing, and 32 masks stay in cache where 256 do not.
    """
    model, audio = planted
    return [explain(model, audio, target="articulation", n_samples=ExplainOptions().auto_cap, seed=s, batch_size=32,
                    resynthesis=False) for s in (0, 1)]


def test_selection_covers_the_planted_region(planted, default_runs):
    model, _ = planted
    region = model.network.region_mask()
    exp = default_runs[0]
    selected = exp.segmentation.mask(exp.selection.positive)
    assert iou(selected, region) >= 0.5
    assert finds_the_region(exp.selection.positive, exp.segmentation.labels, region)
    # no positive segment away from the region: each one has cells inside it
    for segment in exp.selection.positive:
        assert (exp.segmentation.labels[region] == segment).any(), f"segment {segment} lies outside the region"
    # hiding part of the region can only lower an RMS: nothing may come out negative
    assert exp.selection.negative == []
    assert exp.surrogate.r2[TARGET_NAMES.index("articulation")] > 0.9


def test_the_test_can_fail_on_the_historic_bugs(planted, default_runs):
    """The checks above reject the two bugs of earlier implementations."""
    model, _ = planted
    region = model.network.region_mask()
    exp = default_runs[0]
    i = TARGET_NAMES.index("articulation")
    coef, pvalues = exp.surrogate.coef[i], exp.surrogate.pvalues[i]
    # p-values shifted by one against the coefficients (intercept first)
    shifted = np.concatenate([[exp.surrogate.intercept_pvalue[i]], pvalues[:-1]])
    positive, _ = select_segments(coef, shifted, exp.parameters["ratio"])
    assert not finds_the_region(positive, exp.segmentation.labels, region)
    # Felzenszwalb labels looked up off by one (segment s drawn where label s - 1 is)
    positive, _ = select_segments(coef, pvalues, exp.parameters["ratio"])
    assert not finds_the_region(positive, exp.segmentation.labels + 1, region)


def test_different_seeds_agree_at_the_default_sample_count(default_runs):
    a, b = default_runs
    assert a.parameters["n_samples"] == 50_000
    assert jaccard(a.selection.positive, b.selection.positive) >= 0.9
    assert jaccard(a.selection.selected, b.selection.selected) >= 0.9


def test_deletion_check_passes(default_runs):
    check = default_runs[0].selection.faithfulness
    assert check["positive"]["passed"] is True
    assert check["positive"]["change"] < check["positive"]["random_change_mean"] < 0
    assert check["negative"] == {"skipped": "empty selection"}


def test_same_seed_same_result(planted):
    model, audio = planted
    a, b = (explain(model, audio, target="articulation", n_samples=1000, seed=7, resynthesis=False) for _ in range(2))
    np.testing.assert_array_equal(a.surrogate.coef, b.surrogate.coef)
    np.testing.assert_array_equal(a.surrogate.pvalues, b.surrogate.pvalues)
    assert a.selection == b.selection


def test_emotion_target_follows_the_two_levels_from_the_same_passes(planted):
    model, audio = planted
    exp = explain(model, audio, target="energy", n_samples=1000, seed=3, resynthesis=False)
    roles = [s.role for s in exp.selections]
    assert roles == ["target", "via_midlevel", "via_midlevel", "via_midlevel"]
    traced = [s.output for s in exp.selections[1:]]
    assert traced == [m for m, _ in exp.effects.top_midlevels("energy", 3)]
    assert "articulation" in traced
    same = explain(model, audio, target="articulation", n_samples=1000, seed=3, resynthesis=False)
    via = next(s for s in exp.selections if s.output == "articulation")
    assert (via.positive, via.negative) == (same.selection.positive, same.selection.negative)
    # constant mid-levels come out as empty selections, reported as such, and the JSON stays strict
    data = exp.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert set(data["empty_selections"]) == {s.output for s in exp.selections if s.empty}
    assert Explanation.from_dict(json.loads(text)).selections == exp.selections


@pytest.mark.parametrize("kwargs, code", [
    ({"target": "loudness"}, "unknown_target"),
    ({"n_samples": 10}, "bad_samples"),
    ({"n_samples": 10_000_000}, "bad_samples"),
    ({"n_samples": 1000.5}, "bad_samples"),
    ({"offset": -1.0}, "bad_offset"),
    ({"offset": 0.5}, "bad_offset"),  # the planted clip is exactly 10 s: only 0 is possible
    ({"ratio": 0.0}, "bad_ratio"),
    ({"batch_size": 0}, "bad_batch_size"),
    ({"griffin_lim_iters": 0}, "bad_iterations"),
])
def test_bad_options_raise_option_error(planted, kwargs, code):
    model, audio = planted
    options = {"target": "articulation", "n_samples": 1000, "resynthesis": False, **kwargs}
    with pytest.raises(OptionError) as err:
        explain(model, audio, **options)
    assert err.value.code == code
    assert err.value.message
