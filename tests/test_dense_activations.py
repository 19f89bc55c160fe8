"""functional/dense.py and activations.py: hand-worked values and finite differences."""

from __future__ import annotations

import numpy as np

from cnncli.functional import activations as A
from cnncli.functional.dense import dense_backward, dense_forward
from cnncli.gradcheck import numerical_gradient, rel_error


def test_dense_forward_hand_worked() -> None:
    x = np.array([[1.0, 0.0], [2.0, 1.0]])  # two samples as columns: (1, 2) and (0, 1)
    w = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    out, _ = dense_forward(x, w, np.array([0.0, 1.0, -1.0]))
    np.testing.assert_array_equal(out, [[-1, -1], [5.5, 3], [1, 0]])


def test_dense_backward_matches_finite_differences(rng: np.random.Generator) -> None:
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((3, 6)), rng.standard_normal(3)
    proj = rng.standard_normal((3, 4))
    out, cache = dense_forward(x, w, b)
    dx, dw, db = dense_backward(proj, cache)

    def f() -> float:
        return float((dense_forward(x, w, b)[0] * proj).sum())

    for analytic, arr in ((dx, x), (dw, w), (db, b)):
        assert rel_error(analytic, numerical_gradient(f, arr)[0]) < 1e-9


def test_relu_passes_gradient_where_z_is_at_least_zero() -> None:
    z = np.array([-1.0, 0.0, 2.0])
    out, mask = A.relu_forward(z)
    np.testing.assert_array_equal(out, [0, 0, 2])
    np.testing.assert_array_equal(A.relu_backward(np.ones(3), mask), [0, 1, 1])


def test_leaky_relu_slope() -> None:
    out, slope = A.leaky_relu_forward(np.array([-2.0, 3.0]), 0.1)
    np.testing.assert_allclose(out, [-0.2, 3.0])
    np.testing.assert_allclose(A.leaky_relu_backward(np.array([1.0, 1.0]), slope), [0.1, 1.0])


def test_sigmoid_derivative_is_s_times_one_minus_s() -> None:
    s, cache = A.sigmoid_forward(np.array([0.0, 2.0, -800.0]))
    np.testing.assert_allclose(s[:2], [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-15)
    assert s[2] == 0.0  # no overflow warning, no NaN
    np.testing.assert_allclose(A.sigmoid_backward(np.ones(3), cache)[:2],
                               [0.25, s[1] * (1 - s[1])])


def test_tanh_derivative() -> None:
    t, cache = A.tanh_forward(np.array([0.5]))
    np.testing.assert_allclose(A.tanh_backward(np.array([2.0]), cache), 2 * (1 - np.tanh(0.5) ** 2))


def test_dropout_is_inverted_and_keeps_expectation(rng: np.random.Generator) -> None:
    x = np.ones((200, 500), dtype=np.float32)
    out, mask = A.dropout_forward(x, 0.25, rng)
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / 0.75, rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.01
    assert out.dtype == np.float32


def test_dropout_backward_passes_scaled_gradient_only_where_units_were_kept(
        rng: np.random.Generator) -> None:
    x = rng.uniform(0.5, 1.5, (50, 40)).astype(np.float32)  # never 0: kept <=> out != 0
    out, mask = A.dropout_forward(x, 0.4, rng)
    kept = out != 0
    assert 0.5 < kept.mean() < 0.7  # about 1 - rate kept
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx = A.dropout_backward(dout, mask)
    np.testing.assert_allclose(dx[kept], dout[kept] / 0.6, rtol=1e-6)
    assert np.all(dx[~kept] == 0)
