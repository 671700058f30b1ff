"""The surrogate must equal statsmodels' WLS (coefficients, standard errors, p-values, R^2) to 1e-6."""
from __future__ import annotations

import numpy as np
import pytest

from twolevel.explain.selection import jaccard, select_segments, selection_stability
from twolevel.explain.surrogate import cosine_distance_to_ones, fit_surrogate, lime_kernel

sm = pytest.importorskip("statsmodels.api")


def _problem(n=600, k=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
    z[0] = 1
    true = rng.normal(size=k) * (rng.random(k) < 0.3)
    y = np.stack([
        0.7 + z @ true + 0.2 * rng.standard_normal(n),             # sparse linear + noise
        np.sqrt(1.0 + z @ rng.random(k)),                          # non-linear
        -3.0 + 0.5 * z[:, 5] + 0.05 * rng.standard_normal(n),      # one segment and a big intercept
    ], axis=1)
    return z, y


def test_matches_statsmodels_wls_for_all_outputs_at_once():
    z, y = _problem()
    fit = fit_surrogate(z, y)
    weights = lime_kernel(cosine_distance_to_ones(z))
    design = sm.add_constant(z.astype(np.float64), prepend=False)  # intercept last, like ours
    for t in range(y.shape[1]):
        ref = sm.WLS(y[:, t], design, weights=weights).fit()
        np.testing.assert_allclose(fit.coef[t], ref.params[:-1], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(fit.intercept[t], ref.params[-1], rtol=1e-6)
        np.testing.assert_allclose(fit.stderr[t], ref.bse[:-1], rtol=1e-6)
        np.testing.assert_allclose(fit.pvalues[t], ref.pvalues[:-1], rtol=1e-6, atol=1e-300)
        np.testing.assert_allclose(fit.intercept_pvalue[t], ref.pvalues[-1], rtol=1e-6, atol=1e-300)
        np.testing.assert_allclose(fit.r2[t], ref.rsquared, rtol=1e-6)
        assert fit.df_resid == ref.df_resid


def test_fit_through_the_origin_matches_statsmodels_wls_without_a_constant():
    z, y = _problem()
    x = 2.0 * z - 1.0  # e.g. antithetic pairs' differences regressed on 2 z - 1
    weights = np.random.default_rng(1).uniform(0.2, 1.0, len(z))
    fit = fit_surrogate(x, y, sample_weight=weights, intercept=False)
    for t in range(y.shape[1]):
        ref = sm.WLS(y[:, t], x, weights=weights).fit()
        np.testing.assert_allclose(fit.coef[t], ref.params, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(fit.stderr[t], ref.bse, rtol=1e-6)
        np.testing.assert_allclose(fit.pvalues[t], ref.pvalues, rtol=1e-6, atol=1e-300)
        assert fit.df_resid == ref.df_resid == len(z) - z.shape[1]
    assert np.all(fit.intercept == 0) and np.all(np.isnan(fit.intercept_stderr))
    with pytest.raises(ValueError, match="cannot fit 40 segment weights$"):
        fit_surrogate(x[:40], y[:40], intercept=False)


def test_intercept_is_not_shifted_into_the_coefficients():
    # The historic bug: p-values computed with the intercept first, read against coefficients
    # without it. Segment 5 alone matters here, so its p-value must be the tiny one.
    z, y = _problem()
    fit = fit_surrogate(z, y[:, 2])
    assert np.argmin(fit.pvalues[0]) == 5
    assert fit.coef[0, 5] == pytest.approx(0.5, abs=0.02)
    assert fit.intercept[0] == pytest.approx(-3.0, abs=0.02)


def test_kernel_is_limes_cosine_kernel():
    z, _ = _problem(n=50, k=12)
    z[1] = 0  # an all-off sample: cosine distance is taken as 1, as scikit-learn does
    try:
        from sklearn.metrics import pairwise_distances
    except ImportError:  # pragma: no cover - sklearn comes with the dev extra (lime)
        expected = 1 - z.sum(1) / (np.sqrt(z.sum(1)) * np.sqrt(12)).clip(1e-12)
        expected[1] = 1.0
    else:
        expected = pairwise_distances(z, np.ones((1, 12)), metric="cosine").ravel()
    d = cosine_distance_to_ones(z)
    np.testing.assert_allclose(d, expected, atol=1e-12)
    assert d[0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(lime_kernel(d), np.sqrt(np.exp(-(d ** 2) / 0.25 ** 2)))


def test_constant_output_gives_no_nan_pvalues_and_no_selection():
    z, _ = _problem(n=200, k=10)
    fit = fit_surrogate(z, np.zeros((200, 1)))
    assert np.all(np.isfinite(fit.pvalues))
    assert np.isnan(fit.r2[0])  # undefined, and reported as such (None in JSON)
    assert select_segments(fit.coef[0], fit.pvalues[0], 1e-6) == ([], [])


def test_too_few_samples_is_refused():
    with pytest.raises(ValueError):
        fit_surrogate(np.ones((5, 10)), np.zeros(5))


def test_selection_rule_and_signs():
    coef = np.array([2.0, -1.0, 0.5, 0.0, -3.0, 1e-9])
    pvalues = np.array([1e-9, 1e-8, 1e-3, 0.0, 1e-12, 1e-16])
    positive, negative = select_segments(coef, pvalues, ratio=1e-6)
    # 2: ratio 2e-3 fails; 3: zero weight never selected; 5: 1e-16 / 1e-9 = 1e-7 passes
    assert positive == [0, 5]
    assert negative == [4, 1]  # by decreasing |weight|
    assert select_segments(coef, np.ones(6), 1e-6) == ([], [])  # empty is valid


def test_jaccard_and_stability():
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(0.5)
    assert jaccard([], []) == 1.0
    runs = [{"positive": [1, 2], "negative": [3]}, {"positive": [1, 2], "negative": [3]},
            {"positive": [1], "negative": []}]
    s = selection_stability(runs)
    assert s["pairs"] == 3
    assert s["positive"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_block_accumulation_gives_the_same_fit(monkeypatch):
    import twolevel.explain.surrogate as surrogate

    z, y = _problem(n=1000, k=30, seed=2)
    whole = fit_surrogate(z, y)
    monkeypatch.setattr(surrogate, "ROW_BLOCK", 97)  # many uneven blocks
    blocked = fit_surrogate(z, y)
    np.testing.assert_allclose(blocked.coef, whole.coef, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(blocked.pvalues, whole.pvalues, rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(blocked.r2, whole.r2, rtol=1e-10)


@pytest.mark.parametrize("intercept", [True, False])
def test_device_passes_equal_the_numpy_passes(intercept):
    """The torch passes (run on the CPU here; on a GPU in tests/test_cuda.py) give the same sums."""
    from twolevel.explain.surrogate import ROW_BLOCK, _passes_on_device, _passes_with_numpy

    rng = np.random.default_rng(0)
    n, k = ROW_BLOCK + 300, 12  # more than one row block
    x = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
    y = x @ rng.normal(size=(k, 3)) + rng.normal(scale=0.1, size=(n, 3))
    root_w = np.sqrt(lime_kernel(cosine_distance_to_ones(x)))
    gram, rhs, ssr = _passes_with_numpy(x, y, root_w, intercept)
    gram_d, rhs_d, ssr_d = _passes_on_device(x, y, root_w, intercept, "cpu")
    assert gram.shape == gram_d.shape == ((k + 1, k + 1) if intercept else (k, k))
    np.testing.assert_allclose(gram_d, gram, rtol=1e-10)
    np.testing.assert_allclose(rhs_d, rhs, rtol=1e-10, atol=1e-9)
    beta = np.linalg.solve(gram, rhs)
    np.testing.assert_allclose(ssr_d(beta), ssr(beta), rtol=1e-8)
