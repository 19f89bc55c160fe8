"""functional/losses.py: the lecture-note values and the gradients p - onehot(y)."""

from __future__ import annotations

import numpy as np

from cnncli.functional.losses import (
    mse_backward,
    mse_forward,
    softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)


def test_softmax_of_1_2_4() -> None:
    p = softmax(np.array([[1.0], [2.0], [4.0]]))[:, 0]
    np.testing.assert_allclose(p, [0.04201, 0.11420, 0.84379], atol=5e-6)


def test_cross_entropy_of_probability_0_9503() -> None:
    # Logits whose softmax gives the true class p = 0.9503 -> loss -log(0.9503) = 0.05098.
    p = np.array([0.9503, 0.0497])
    loss, _ = softmax_cross_entropy_forward(np.log(p)[:, None], np.array([0]))
    assert round(loss, 5) == 0.05098


def test_softmax_cross_entropy_gradient_is_p_minus_onehot_over_n() -> None:
    z = np.array([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    y = np.array([2, 0])
    _, cache = softmax_cross_entropy_forward(z, y)
    dz = softmax_cross_entropy_backward(cache)
    expected = softmax(z)
    expected[2, 0] -= 1
    expected[0, 1] -= 1
    np.testing.assert_allclose(dz, expected / 2, rtol=1e-12)
    np.testing.assert_allclose(dz[:, 1], [(1 / 3 - 1) / 2, 1 / 6, 1 / 6])


def test_softmax_cross_entropy_is_stable_for_huge_logits() -> None:
    z = np.array([[1000.0], [0.0], [-1000.0]], dtype=np.float32)
    loss, cache = softmax_cross_entropy_forward(z, np.array([1]))
    assert loss == 1000.0
    assert np.isfinite(softmax_cross_entropy_backward(cache)).all()


def test_mse_value_and_gradient_hand_worked() -> None:
    y_hat = np.array([[0.2, 0.6], [0.9, 0.1]])
    y = np.array([1, 1])
    loss, cache = mse_forward(y_hat, y)
    # sample 0: 0.5*(0.04 + 0.01) = 0.025; sample 1: 0.5*(0.36 + 0.81) = 0.585
    assert np.isclose(loss, (0.025 + 0.585) / 2)
    np.testing.assert_allclose(mse_backward(cache), [[0.1, 0.3], [-0.05, -0.45]])
