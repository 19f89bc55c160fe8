"""functional/batchnorm.py: a hand-worked 2x3 case, finite differences in both modes, dtype."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import TrainingError
from cnncli.functional.batchnorm import batchnorm_backward, batchnorm_forward
from cnncli.gradcheck import numerical_gradient, rel_error

# The worked example: D = 2 features x N = 3 samples, one sample per column.
# Feature 0 is 2 + (-1, 0, 1): mean 2, biased variance (1 + 0 + 1) / 3 = 2/3.
# Feature 1 is 5 + (3, 1, -4): mean 5, biased variance (9 + 1 + 16) / 3 = 26/3.
# eps = 1/3 makes var + eps = 1 and 9, so sigma = 1 and 3.
X = np.array([[1.0, 2.0, 3.0], [8.0, 6.0, 1.0]])
GAMMA = np.array([2.0, 0.5])
BETA = np.array([1.0, -1.0])
EPS = 1.0 / 3.0
DOUT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5):
    zeros, ones = np.zeros(x.shape[0]), np.ones(x.shape[0])
    return batchnorm_forward(x, gamma, beta, zeros, ones, training=True, eps=eps)


def test_batchnorm_2x3_training_forward_by_hand() -> None:
    out, _, _, _ = train_forward(X, GAMMA, BETA, EPS)
    # xhat row 0 = (-1, 0, 1) / 1          -> out = 2 xhat + 1    = (-1, 1, 3)
    # xhat row 1 = (3, 1, -4) / 3          -> out = 0.5 xhat - 1  = (-1/2, -5/6, -5/3)
    np.testing.assert_allclose(out, [[-1, 1, 3], [-0.5, -5 / 6, -5 / 3]], rtol=0, atol=1e-15)


def test_batchnorm_2x3_training_backward_by_hand() -> None:
    _, cache, _, _ = train_forward(X, GAMMA, BETA, EPS)
    dx, dgamma, dbeta = batchnorm_backward(DOUT, cache)
    # dbeta = sum(dout) = (1, 1); dgamma = sum(dout xhat) = (-1, -4/3)  [xhat[1, 2] = -4/3]
    # dx = gamma / (M sigma) (M dout - dbeta - xhat dgamma), M = 3:
    # row 0: 2/3 ((3, 0, 0) - (1, 1, 1) + (-1, 0, 1))          = 2/3 (1, -1, 0)
    # row 1: 1/18 ((0, 0, 3) - (1, 1, 1) + 4/3 (1, 1/3, -4/3)) = 1/18 (1/3, -5/9, 2/9)
    #                                                          = (1/54, -5/162, 1/81)
    np.testing.assert_allclose(dbeta, [1, 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(dgamma, [-1, -4 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(dx, [[2 / 3, -2 / 3, 0], [1 / 54, -5 / 162, 1 / 81]],
                               rtol=0, atol=1e-15)


def test_batchnorm_2x3_running_statistics_update_by_hand() -> None:
    rm, rv = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    _, _, new_rm, new_rv = batchnorm_forward(X, GAMMA, BETA, rm, rv, training=True,
                                             momentum=0.25, eps=EPS)
    # mean (2, 5); unbiased variance = squared deviations / (M - 1) = (2/2, 26/2) = (1, 13)
    # new = 0.75 old + 0.25 batch: mean (0.5, 2.0), variance (1.0, 4.75)
    np.testing.assert_allclose(new_rm, [0.5, 2.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(new_rv, [1.0, 4.75], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(rm, [0.0, 1.0])  # the inputs are not updated in place
    np.testing.assert_array_equal(rv, [1.0, 2.0])


def test_batchnorm_2x3_evaluation_uses_running_statistics_by_hand() -> None:
    # Running mean (2, 4), running variance (0.75, 8.75), eps 0.25: sigma = 1 and 3.
    rm, rv = np.array([2.0, 4.0]), np.array([0.75, 8.75])
    out, cache, rm2, rv2 = batchnorm_forward(X, GAMMA, BETA, rm, rv, training=False, eps=0.25)
    # xhat row 0 = (x - 2) / 1 = (-1, 0, 1)        -> 2 xhat + 1   = (-1, 1, 3)
    # xhat row 1 = (x - 4) / 3 = (4/3, 2/3, -1)    -> 0.5 xhat - 1 = (-1/3, -2/3, -3/2)
    np.testing.assert_allclose(out, [[-1, 1, 3], [-1 / 3, -2 / 3, -1.5]], rtol=0, atol=1e-15)
    assert rm2 is rm and rv2 is rv  # evaluation leaves the statistics as they were
    dx, dgamma, dbeta = batchnorm_backward(DOUT, cache)
    # Constants: dx = gamma dout / sigma; dgamma = sum(dout xhat) = (-1, -1); dbeta = (1, 1)
    np.testing.assert_allclose(dx, [[2, 0, 0], [0, 0, 1 / 6]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(dgamma, [-1, -1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(dbeta, [1, 1], rtol=0, atol=1e-15)


def test_batchnorm_evaluation_output_of_a_sample_does_not_depend_on_its_batch() -> None:
    rm, rv = np.array([2.0, 4.0]), np.array([0.75, 8.75])
    batch, _, _, _ = batchnorm_forward(X, GAMMA, BETA, rm, rv, training=False)
    alone, _, _, _ = batchnorm_forward(X[:, 1:2], GAMMA, BETA, rm, rv, training=False)
    np.testing.assert_allclose(alone[:, 0], batch[:, 1], rtol=1e-15)


def test_batchnorm_4d_normalises_each_channel_over_h_w_and_batch(
    rng: np.random.Generator,
) -> None:
    x = rng.normal(3.0, 2.0, (3, 4, 5, 6)) * np.array([1.0, 10.0, 0.1])[:, None, None, None]
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 4.0])
    out, _, rm, rv = train_forward(x, gamma, beta, eps=0.0)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), gamma, rtol=1e-12)
    # running stats from zeros/ones with momentum 0.1, unbiased variance (numpy's ddof=1)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(1, 2, 3), ddof=1), rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5, 2)], ids=["2d-DxN", "4d-CxHxWxN"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_batchnorm_backward_matches_finite_differences(
    rng: np.random.Generator, shape: tuple[int, ...], training: bool
) -> None:
    c = shape[0]
    x = rng.normal(0.5, 2.0, shape)
    gamma, beta = rng.normal(1.0, 0.5, c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    proj = rng.standard_normal(shape)  # objective: sum(out * proj), so dout = proj

    def f() -> float:
        out = batchnorm_forward(x, gamma, beta, rm, rv, training=training, eps=1e-3)[0]
        return float((out * proj).sum())

    _, cache, _, _ = batchnorm_forward(x, gamma, beta, rm, rv, training=training, eps=1e-3)
    dx, dgamma, dbeta = batchnorm_backward(proj, cache)
    for analytic, arr in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        assert rel_error(analytic, numerical_gradient(f, arr)[0]) < 1e-8


def test_batchnorm_backward_check_fails_on_a_graph_without_the_statistics_terms(
    rng: np.random.Generator,
) -> None:
    # The training-mode check above can fail: gamma dout / sigma alone (the evaluation
    # formula, ignoring that mu and var depend on x) is far from the finite differences.
    x, gamma, beta = rng.standard_normal((4, 5)), rng.normal(1.0, 0.5, 4), np.zeros(4)
    proj = rng.standard_normal((4, 5))
    _, cache, _, _ = train_forward(x, gamma, beta)

    def f() -> float:
        return float((train_forward(x, gamma, beta)[0] * proj).sum())

    wrong = proj * (cache.gamma * cache.inv_std)[:, None]
    assert rel_error(wrong, numerical_gradient(f, x)[0]) > 0.1


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5, 2)])
def test_batchnorm_keeps_float32(
    rng: np.random.Generator, shape: tuple[int, ...], training: bool
) -> None:
    c = shape[0]
    x = rng.standard_normal(shape)
    gamma, beta = rng.normal(1.0, 0.5, c), rng.standard_normal(c)
    rm, rv = np.zeros(c), np.ones(c)
    dout = rng.standard_normal(shape)
    f32 = [a.astype(np.float32) for a in (x, gamma, beta, rm, rv)]
    out, cache, rm2, rv2 = batchnorm_forward(*f32, training=training)
    grads = batchnorm_backward(dout.astype(np.float32), cache)
    assert {a.dtype for a in (out, rm2, rv2, *grads)} == {np.dtype(np.float32)}
    ref, ref_cache, _, _ = batchnorm_forward(x, gamma, beta, rm, rv, training=training)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    ref_grads = batchnorm_backward(dout, ref_cache)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_batchnorm_training_on_one_value_per_feature_is_an_error() -> None:
    with pytest.raises(TrainingError, match=r"at least 2 values per channel.*\(3, 1\)"):
        train_forward(np.ones((3, 1)), np.ones(3), np.zeros(3))
