"""The least-squares emotion layer (twolevel/emotion_layer.py)."""
import numpy as np
import pytest

from twolevel.emotion_layer import least_squares_layer


def _linear_data(n=200, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    mids = rng.normal(size=(n, 7))
    weight = rng.normal(size=(8, 7))
    bias = rng.normal(size=8)
    ratings = mids @ weight.T + bias + noise * rng.normal(size=(n, 8))
    return mids, ratings, weight, bias


def test_recovers_an_exact_linear_layer():
    mids, ratings, weight, bias = _linear_data()
    w, b = least_squares_layer(mids, ratings)
    assert w.shape == (8, 7) and b.shape == (8,)
    np.testing.assert_allclose(w, weight, atol=1e-9)
    np.testing.assert_allclose(b, bias, atol=1e-9)


def test_beats_any_other_layer_on_its_clips():
    mids, ratings, weight, bias = _linear_data(noise=0.5)
    w, b = least_squares_layer(mids, ratings)
    best = ((mids @ w.T + b - ratings) ** 2).sum()
    assert best < ((mids @ weight.T + bias - ratings) ** 2).sum()
    assert best < ((mids @ (w + 0.01).T + b - ratings) ** 2).sum()


def test_signs_keep_each_bounded_weight_on_its_side_and_leave_free_ones_free():
    mids, ratings, weight, bias = _linear_data(noise=0.1)
    signs = -np.sign(weight)  # every weight pushed to the side it does not want
    signs[:, 0] = 0  # except mid-level 0's, left free
    w, b = least_squares_layer(mids, ratings, signs)
    assert (w[signs > 0] >= 0).all() and (w[signs < 0] <= 0).all()
    assert (np.abs(w[signs != 0]) < 1e-6).mean() > 0.8  # a weight pushed off its side mostly stays at zero
    # no feasible layer does better: the free solution clamped to the bounds is feasible
    w_free, b_free = least_squares_layer(mids, ratings)
    clamped = np.where(signs > 0, np.maximum(w_free, 0), np.where(signs < 0, np.minimum(w_free, 0), w_free))
    clamped_b = (ratings - mids @ clamped.T).mean(axis=0)
    assert ((mids @ w.T + b - ratings) ** 2).sum() <= ((mids @ clamped.T + clamped_b - ratings) ** 2).sum()
    # bounds that the unconstrained solution already keeps change nothing
    w_agree, b_agree = least_squares_layer(mids, ratings, np.sign(weight))
    np.testing.assert_allclose(w_agree, w_free, atol=1e-6)
    np.testing.assert_allclose(b_agree, b_free, atol=1e-6)


def test_shrinkage_is_a_ridge_towards_the_prior():
    mids, ratings, weight, bias = _linear_data(n=50, noise=0.5)
    prior = weight + 1.0
    free, _ = least_squares_layer(mids, ratings)
    near, _ = least_squares_layer(mids, ratings, prior=prior, shrinkage=0.5)
    far, _ = least_squares_layer(mids, ratings, prior=prior, shrinkage=1e6)
    np.testing.assert_allclose(least_squares_layer(mids, ratings, prior=prior, shrinkage=0.0)[0], free)
    np.testing.assert_allclose(far, prior, atol=1e-4)  # an overwhelming penalty leaves the prior
    # the closed form: (X'X + n a D) W = X'Y + n a D W0, D the identity without the bias
    x = np.c_[mids, np.ones(50)]
    penalty = 50 * 0.5 * np.diag([1.0] * 7 + [0.0])
    closed = np.linalg.solve(x.T @ x + penalty, x.T @ ratings + penalty @ np.r_[prior.T, np.zeros((1, 8))])
    np.testing.assert_allclose(near, closed[:-1].T, atol=1e-9)
    assert np.linalg.norm(near - prior) < np.linalg.norm(free - prior)
    # with bounds too: every bounded weight on its side, and nearer the prior than without the penalty
    signs = np.sign(prior)
    bounded, _ = least_squares_layer(mids, ratings, signs, prior=prior, shrinkage=0.5)
    assert (bounded[signs > 0] >= 0).all() and (bounded[signs < 0] <= 0).all()
    assert np.linalg.norm(bounded - prior) < np.linalg.norm(least_squares_layer(mids, ratings, signs)[0] - prior)


@pytest.mark.parametrize("mids, ratings, signs, message", [
    (np.zeros((5, 7)), np.zeros((5, 8)), None, "5 clips cannot fit a layer over 7 mid-levels"),
    (np.zeros((20, 7)), np.zeros((19, 8)), None, "the same clips"),
    (np.full((20, 7), np.nan), np.zeros((20, 8)), None, "must be finite"),
    (np.ones((20, 7)), np.zeros((20, 8)), np.ones((7, 8)), r"signs \(7, 8\) must be \(emotions, mid-levels\)"),
])
def test_bad_input_is_named(mids, ratings, signs, message):
    with pytest.raises(ValueError, match=message):
        least_squares_layer(mids, ratings, signs)


def test_bad_shrinkage_or_prior_is_named():
    mids, ratings, _, _ = _linear_data(n=20)
    with pytest.raises(ValueError, match="shrinkage must be a number >= 0, got -1"):
        least_squares_layer(mids, ratings, shrinkage=-1)
    with pytest.raises(ValueError, match=r"prior \(7, 8\) must be"):
        least_squares_layer(mids, ratings, prior=np.zeros((7, 8)), shrinkage=1)


# --- contrast pairs (LayerContrast) ------------------------------------------------------------

from twolevel.emotion_layer import LayerContrast, mode_contrast  # noqa: E402


def _objective(mids, ratings, w, b, prior, shrinkage, contrast, e):
    """The fit's objective for emotion ``e``, written out as the docstrings state it."""
    mse = np.mean((mids @ w + b - ratings[:, e]) ** 2)
    hinge = np.maximum(0, contrast.margin - contrast.directions[e] * (contrast.deltas @ w)) ** 2
    return mse + shrinkage * np.sum((w - prior[e]) ** 2) + contrast.weight * hinge.mean()


def test_contrast_fit_is_the_optimum_of_its_objective():
    from scipy.optimize import minimize

    mids, ratings, weight, _ = _linear_data(n=120, noise=0.3)
    rng = np.random.default_rng(1)
    # pairs whose change the data's layer gets wrong for emotion 0 about half the time
    contrast = LayerContrast(rng.normal(size=(40, 7)), np.r_[1, -1, np.zeros(6)], weight=3.0, margin=0.2)
    prior = np.zeros((8, 7))
    w, b = least_squares_layer(mids, ratings, prior=prior, shrinkage=0.01, contrast=contrast)
    for e in (0, 1):
        found = _objective(mids, ratings, w[e], b[e], prior, 0.01, contrast, e)
        start = np.r_[w[e], b[e]]
        general = minimize(lambda x: _objective(mids, ratings, x[:-1], x[-1], prior, 0.01, contrast, e), start + 0.1,
                           method="BFGS", options={"gtol": 1e-10})
        assert found <= general.fun + 1e-9
    # emotions the contrast leaves free are the plain fit's
    free_w, free_b = least_squares_layer(mids, ratings, prior=prior, shrinkage=0.01)
    np.testing.assert_allclose(w[2:], free_w[2:], atol=1e-12)
    np.testing.assert_allclose(b[2:], free_b[2:], atol=1e-12)


def test_a_strong_contrast_makes_its_pairs_right_and_a_zero_one_changes_nothing():
    mids, ratings, _, _ = _linear_data(n=150, noise=0.5)
    minor = np.zeros((10, 7))
    major = np.zeros((10, 7))
    major[:, 6] = -1.0  # the mid-level "minorness" falls from minor to major in every pair
    names = ["valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender"]
    contrast = mode_contrast(minor, major, names, weight=1e4, margin=0.05)
    assert contrast.directions.tolist() == [1, 0, 0, 0, 0, 1, -1, 0]
    w, _ = least_squares_layer(mids, ratings, contrast=contrast)
    assert contrast.satisfied(w).all()
    # a penalty, not a bound: within weight's reach of the margin (the data's own fit is far on the other side)
    assert w[0, 6] <= -0.049 and w[5, 6] <= -0.049 and w[6, 6] >= 0.049
    plain = least_squares_layer(mids, ratings)
    off = LayerContrast(major - minor, contrast.directions, weight=0.0)
    np.testing.assert_allclose(least_squares_layer(mids, ratings, contrast=off)[0], plain[0])
    # with sign bounds too: both hold
    signs = np.zeros((8, 7))
    signs[6, 6] = 1
    w_signed, _ = least_squares_layer(mids, ratings, signs, contrast=contrast)
    assert w_signed[6, 6] >= 0.049 and contrast.satisfied(w_signed).all()


@pytest.mark.parametrize("deltas, directions, weight, margin, message", [
    (np.zeros((0, 7)), np.zeros(8), 1.0, 0.01, "finite"),
    (np.full((3, 7), np.nan), np.zeros(8), 1.0, 0.01, "finite"),
    (np.zeros((3, 7)), np.full(8, 2), 1.0, 0.01, "directions"),
    (np.zeros((3, 7)), np.zeros(8), -1.0, 0.01, "weight and margin"),
])
def test_bad_contrast_is_named(deltas, directions, weight, margin, message):
    with pytest.raises(ValueError, match=message):
        LayerContrast(deltas, directions, weight, margin)


def test_contrast_of_the_wrong_shape_is_named():
    mids, ratings, _, _ = _linear_data(n=30)
    with pytest.raises(ValueError, match="must match 7 mid-levels and 8 emotions"):
        least_squares_layer(mids, ratings, contrast=LayerContrast(np.ones((3, 6)), np.r_[1, np.zeros(7)]))


def test_the_prior_of_a_shrunk_fit_is_recovered_from_the_fit():
    from twolevel.emotion_layer import shrinkage_prior

    mids, ratings, _, _ = _linear_data(n=80, noise=0.4)
    prior = np.random.default_rng(3).normal(size=(8, 7))
    w, b = least_squares_layer(mids, ratings, prior=prior, shrinkage=0.05)
    np.testing.assert_allclose(shrinkage_prior(mids, ratings, w, b, 0.05), prior, atol=1e-8)
    with pytest.raises(ValueError, match="shrinkage > 0"):
        shrinkage_prior(mids, ratings, w, b, 0.0)
