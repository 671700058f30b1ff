"""Level 1: effects are exactly the linear layer's contributions."""
from __future__ import annotations

import numpy as np
import pytest

from twolevel.effects import Effects, corpus_effects, effects
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES


def test_effects_sum_to_output_minus_bias():
    rng = np.random.default_rng(0)
    weight, bias, mid = rng.normal(size=(8, 7)), rng.normal(size=8), rng.uniform(size=7)
    eff = Effects.from_layer(weight, bias, mid)
    assert eff.contributions.shape == (8, 7)
    np.testing.assert_allclose(eff.contributions.sum(1), weight @ mid, rtol=0, atol=1e-12)
    np.testing.assert_allclose(eff.totals, weight @ mid + bias, rtol=0, atol=1e-12)
    assert eff.contributions[2, 4] == weight[2, 4] * mid[4]


def test_effects_batched_and_corpus():
    rng = np.random.default_rng(1)
    weight, mids = rng.normal(size=(8, 7)), rng.uniform(size=(5, 7))
    batch = effects(weight, mids)
    assert batch.shape == (5, 8, 7)
    np.testing.assert_allclose(batch[3], effects(weight, mids[3]))
    summary = corpus_effects(weight, mids)
    np.testing.assert_allclose(summary["mean"], batch.mean(0))
    assert summary["effects"].shape == (5, 8, 7)


def test_top_midlevels_and_dict_round_trip():
    weight = np.zeros((8, 7))
    weight[EMOTION_NAMES.index("energy"), MIDLEVEL_NAMES.index("articulation")] = 0.9
    weight[EMOTION_NAMES.index("energy"), MIDLEVEL_NAMES.index("minorness")] = -0.5
    eff = Effects.from_layer(weight, np.zeros(8), np.ones(7))
    assert [m for m, _ in eff.top_midlevels("energy", 2)] == ["articulation", "minorness"]
    back = Effects.from_dict(eff.to_dict())
    np.testing.assert_array_equal(back.contributions, eff.contributions)
    assert eff.to_dict()["energy"]["total"] == pytest.approx(0.4)


def test_prediction_effects_match_network_emotions(tiny_model, example_clip):
    result = tiny_model.predict(example_clip)
    np.testing.assert_allclose(result.effects.totals, result.emotion_vector, atol=1e-12)
    # The clip's emotions are the mean of its windows' emotions (the layer is linear).
    window_emotions = np.array([[w.emotions[e] for e in EMOTION_NAMES] for w in result.windows])
    np.testing.assert_allclose(window_emotions.mean(0), result.emotion_vector, atol=1e-9)
    # And the network's own float32 output agrees.
    import torch

    from twolevel.audio import split_windows

    windows, _ = split_windows(tiny_model.load_audio(example_clip).samples)
    with torch.no_grad():
        _, emo = tiny_model.network(torch.from_numpy(windows))
    np.testing.assert_allclose(emo.numpy().mean(0), result.emotion_vector, atol=1e-5)
