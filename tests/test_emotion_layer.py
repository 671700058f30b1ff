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
