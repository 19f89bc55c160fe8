"""functional/stochpool.py: the worked example, sampling frequencies, routing, exact gradients."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import images

from cnncli.functional.stochpool import (
    stochpool2d_backward_eval,
    stochpool2d_backward_train,
    stochpool2d_forward_eval,
    stochpool2d_forward_train,
)
from cnncli.gradcheck import numerical_gradient, rel_error

WORKED = [[1.0, 2.0], [3.0, 4.0]]  # S1 = 10, S2 = 30: p = 0.1/0.2/0.3/0.4, eval output 3.0
N_DRAWS = 200_000

# (x shape, size, stride): non-overlapping and tiling, odd sizes that leave a border,
# overlapping 3x3 / stride 2, and a rectangular window with mixed overlap.
GEOMETRIES = [
    ((2, 4, 4, 3), (2, 2), (2, 2)),
    ((2, 7, 7, 2), (3, 3), (3, 3)),
    ((2, 7, 7, 2), (3, 3), (2, 2)),
    ((1, 5, 6, 2), (2, 3), (1, 2)),
]


def _windows(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> Iterator[tuple[tuple[int, int, int, int], list[int], list[int], np.ndarray]]:
    """Yield ((c, i, j, n), rows, cols, taps): every window's input positions, row-major."""
    c_, h, w, n_ = x.shape
    oh, ow = (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1
    for c in range(c_):
        for i in range(oh):
            for j in range(ow):
                for n in range(n_):
                    rows = [i * stride[0] + a for a in range(size[0]) for _ in range(size[1])]
                    cols = [j * stride[1] + b for _ in range(size[0]) for b in range(size[1])]
                    yield (c, i, j, n), rows, cols, x[c, rows, cols, n]


# -- the worked example -----------------------------------------------------------------------

def test_worked_example_eval_output_is_3_and_gradient_is_hand_derived() -> None:
    out, cache = stochpool2d_forward_eval(images(WORKED), (2, 2), (2, 2))
    assert out[0, 0, 0, 0] == pytest.approx(3.0, rel=1e-15)  # (1 + 4 + 9 + 16) / (1 + 2 + 3 + 4)
    dx = stochpool2d_backward_eval(images([[1.0]]), cache)
    # (2 a_j S1 - S2) / S1^2 = (20 a_j - 30) / 100
    np.testing.assert_allclose(dx[0, :, :, 0], [[-0.1, 0.1], [0.3, 0.5]], rtol=1e-14)


@pytest.mark.parametrize("scale", [1e-30, 1e-36])
def test_eval_output_scales_with_tiny_windows_and_its_gradient_does_not(scale: float) -> None:
    # S2 / S1 is homogeneous of degree 1, so its gradient is the same at every scale; in
    # float32 the squares (1e-60, 1e-72) underflow, the probabilities do not; 2 / S1 (up to
    # 2e35) times a dout of 1e4 would overflow float32 (3.4e38) if formed first.
    x = images(WORKED, dtype=np.float32) * np.float32(scale)
    out, cache = stochpool2d_forward_eval(x, (2, 2), (2, 2))
    np.testing.assert_allclose(out[0, 0, 0, 0], 3.0 * scale, rtol=1e-6)
    dx = stochpool2d_backward_eval(images([[1e4]], dtype=np.float32), cache)
    np.testing.assert_allclose(dx[0, :, :, 0], [[-1000, 1000], [3000, 5000]], rtol=1e-5)


def test_eval_output_of_hand_worked_windows() -> None:
    x = images([[1, 2, 0, 0, 2, 2],
                [3, 4, 0, 5, 2, 2],
                [0, 0, 0, 0, 6, 0],
                [0, 0, 0, 0, 0, 2]])
    out, _ = stochpool2d_forward_eval(x, (2, 2), (2, 2))
    # [[1,2],[3,4]] -> 3; [[0,0],[0,5]] -> 25/5; all 2 -> 16/8; all 0 -> 0; [[6,0],[0,2]] -> 40/8
    np.testing.assert_array_equal(out[0, :, :, 0], [[3, 5, 2], [0, 0, 5]])


# -- sampling statistics ----------------------------------------------------------------------
# The counts n_t of each tap over n independent windows are Binomial(n, p_t). Every cell
# expects n p_t >= 20,000 draws, where the normal approximation is excellent, so a cell more
# than 6 standard deviations sqrt(n p_t (1 - p_t)) off happens with probability ~2e-9 for a
# correct sampler; and the chi-square statistic sum_t (n_t - n p_t)^2 / (n p_t) with 3 degrees
# of freedom exceeds 50 with probability ~8e-11. The seed is fixed, so a given NumPy always
# gives the same verdict; the margins are there so a new NumPy random stream cannot flake.
# What they still catch: 6 sigma is 0.4 (p = 0.1) to 0.66 (p = 0.4) percentage points, so a
# sampler off by one tap, weighting by a^2 (p = 0.03/0.13/0.3/0.53) or ignoring u fails by far.

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_worked_example_samples_taps_with_probabilities_0_1_to_0_4(dtype: type) -> None:
    x = np.tile(images(WORKED, dtype=dtype), (1, 1, 1, N_DRAWS))  # 200,000 windows, one each
    out, cache = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(2013))
    counts = np.bincount(cache.index.ravel(), minlength=5)
    assert counts[4] == 0  # no window is all-zero
    expected = N_DRAWS * np.array([0.1, 0.2, 0.3, 0.4])
    sigma = np.sqrt(expected * (1 - expected / N_DRAWS))
    assert np.all(np.abs(counts[:4] - expected) < 6 * sigma), counts
    assert np.sum((counts[:4] - expected) ** 2 / expected) < 50.0, counts
    # The output is the activation at the sampled tap: the tap index t holds the value t + 1.
    np.testing.assert_array_equal(out.ravel(), cache.index.ravel() + 1)


def test_zero_activations_are_never_sampled() -> None:
    x = np.tile(images([[0.0, 1.0], [0.0, 3.0]]), (1, 1, 1, N_DRAWS))
    out, cache = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(7))
    counts = np.bincount(cache.index.ravel(), minlength=5)
    assert counts[0] == 0 and counts[2] == 0 and counts[4] == 0
    # Taps 1 and 3 with p = 0.25 / 0.75: same 6-sigma reasoning as above.
    sigma = np.sqrt(N_DRAWS * 0.25 * 0.75)
    assert abs(counts[1] - 0.25 * N_DRAWS) < 6 * sigma, counts
    assert np.all(out > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_window_with_a_positive_value_always_yields_a_sample(dtype: type) -> None:
    # A window whose only positive value is the smallest subnormal: u * S1 rounds up to S1
    # for about half the draws of u, so a threshold of u * S1 would leave no tap above it.
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.zeros((1, 2, 2, 10_000), dtype=dtype)
    x[0, 0, 1, :] = tiny
    out, cache = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(3))
    assert np.all(cache.index == 1) and np.all(out == tiny)


def test_mean_training_output_is_the_eval_output() -> None:
    # E[a_k] = sum p_i a_i = S2 / S1 = 3, Var[a_k] = S3 / S1 - 3^2 = 100 / 10 - 9 = 1, so the
    # mean of 200,000 draws has standard deviation 1 / sqrt(200,000) ~ 0.0022; allow 6 sigma.
    x = np.tile(images(WORKED), (1, 1, 1, N_DRAWS))
    out, _ = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(11))
    eval_out, _ = stochpool2d_forward_eval(images(WORKED), (2, 2), (2, 2))
    assert abs(out.mean() - eval_out[0, 0, 0, 0]) < 6 / np.sqrt(N_DRAWS)


@pytest.mark.parametrize(("shape", "size", "stride"), GEOMETRIES)
def test_train_forward_picks_first_tap_whose_running_sum_reaches_the_threshold(
    shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]
) -> None:
    # The documented contract: one rng.random(out.shape) call, u per window, and the sample
    # is the first tap whose running sum reaches S1 - u S1.
    data = np.random.default_rng(5)
    x = np.maximum(data.standard_normal(shape), 0.0)  # relu output: zeros and all-zero windows
    x[:, : size[0], : size[1], 0] = 0.0  # at least one all-zero window per channel
    out, cache = stochpool2d_forward_train(x, size, stride, np.random.default_rng(99))
    u = np.random.default_rng(99).random(out.shape)
    n_taps = size[0] * size[1]
    for idx, _, _, a in _windows(x, size, stride):
        if a.sum() == 0:
            assert cache.index[idx] == n_taps and out[idx] == 0.0
            continue
        k = int(np.argmax(np.cumsum(a) >= a.sum() - u[idx] * a.sum()))
        assert cache.index[idx] == k and out[idx] == a[k] > 0


# -- determinism and dtype --------------------------------------------------------------------

def test_same_generator_state_gives_same_samples() -> None:
    x = np.maximum(np.random.default_rng(3).standard_normal((3, 8, 8, 16)), 0.0)
    np.random.seed(0)
    global_state = np.random.get_state()[1].copy()
    rng_a, rng_b = np.random.default_rng(42), np.random.default_rng(42)
    out_a, cache_a = stochpool2d_forward_train(x, (2, 2), (2, 2), rng_a)
    out_b, cache_b = stochpool2d_forward_train(x, (2, 2), (2, 2), rng_b)
    np.testing.assert_array_equal(cache_a.index, cache_b.index)
    np.testing.assert_array_equal(out_a, out_b)
    assert rng_a.bit_generator.state == rng_b.bit_generator.state  # advanced alike
    # The draws come from the generator passed in: the next call differs, the global one is
    # untouched.
    _, cache_c = stochpool2d_forward_train(x, (2, 2), (2, 2), rng_a)
    assert np.any(cache_c.index != cache_a.index)
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)


def test_stochpool_keeps_float32() -> None:
    x = np.abs(np.random.default_rng(0).standard_normal((2, 6, 6, 4))).astype(np.float32)
    out, cache = stochpool2d_forward_train(x, (3, 3), (2, 2), np.random.default_rng(0))
    assert out.dtype == np.float32
    assert stochpool2d_backward_train(np.ones_like(out), cache).dtype == np.float32
    out, cache = stochpool2d_forward_eval(x, (3, 3), (2, 2))
    assert out.dtype == np.float32
    assert stochpool2d_backward_eval(np.ones_like(out), cache).dtype == np.float32


# -- training-mode routing --------------------------------------------------------------------

def test_train_backward_routes_gradient_to_the_only_positive_tap() -> None:
    # One positive value per window forces the sample; the bottom-right window is all zero.
    x = images([[0, 0, 0, 2], [0, 7, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0]])
    out, cache = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, :, :, 0], [[7, 2], [3, 0]])
    dx = stochpool2d_backward_train(images([[1, 2], [8, 4]]), cache)
    expected = [[0, 0, 0, 2], [0, 1, 0, 0], [8, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_train_backward_adds_where_overlapping_windows_sample_the_same_position() -> None:
    # Windows (1, 2) with stride 1 over [0, 5, 0]: both windows must pick the middle.
    x = images([[0.0, 5.0, 0.0]])
    out, cache = stochpool2d_forward_train(x, (1, 2), (1, 1), np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, 0, :, 0], [5, 5])
    dx = stochpool2d_backward_train(images([[1.5, 2.0]]), cache)
    np.testing.assert_array_equal(dx[0, 0, :, 0], [0, 3.5, 0])


@pytest.mark.parametrize(("shape", "size", "stride"), GEOMETRIES)
def test_train_backward_places_dout_exactly_at_sampled_positions(
    shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]
) -> None:
    data = np.random.default_rng(8)
    x = np.maximum(data.standard_normal(shape), 0.0)
    out, cache = stochpool2d_forward_train(x, size, stride, np.random.default_rng(1))
    dout = data.standard_normal(out.shape)
    dx = stochpool2d_backward_train(dout, cache)
    expected = np.zeros_like(x)
    n_taps = size[0] * size[1]
    for idx, rows, cols, a in _windows(x, size, stride):
        k = cache.index[idx]
        if k < n_taps:  # a sampled position: the output is its value, the gradient goes there
            assert out[idx] == a[k] > 0
            expected[idx[0], rows[k], cols[k], idx[3]] += dout[idx]
        else:
            assert out[idx] == 0 and not a.any()
    np.testing.assert_allclose(dx, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize(("shape", "size", "stride"), GEOMETRIES)
def test_train_gradient_matches_finite_differences_with_samples_held_fixed(
    shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]
) -> None:
    # The same seed on every call draws the same u per window; a finite-difference step that
    # changes a sample anyway (u S1 crossing a running sum) shows in the index fingerprint and
    # is retried with smaller steps, as gradcheck does for max-pool argmaxes.
    data = np.random.default_rng(21)
    x = data.uniform(0.5, 2.0, shape)
    last = {}

    def f() -> float:
        out, last["cache"] = stochpool2d_forward_train(x, size, stride, np.random.default_rng(4))
        return float(np.sum(out * proj))

    out, cache = stochpool2d_forward_train(x, size, stride, np.random.default_rng(4))
    proj = data.standard_normal(out.shape)
    dx = stochpool2d_backward_train(proj, cache)
    numeric, valid = numerical_gradient(f, x, state=lambda: last["cache"].index.tobytes())
    assert valid.mean() > 0.95
    assert rel_error(dx[valid], numeric[valid]) < 1e-9
    assert np.count_nonzero(dx) > 0


# -- evaluation-mode gradient -----------------------------------------------------------------

@pytest.mark.parametrize(("shape", "size", "stride"), GEOMETRIES)
def test_eval_gradient_matches_finite_differences(
    shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]
) -> None:
    data = np.random.default_rng(13)
    x = data.uniform(0.1, 2.0, shape)  # positive, so S2 / S1 is smooth everywhere nearby

    def f() -> float:
        return float(np.sum(stochpool2d_forward_eval(x, size, stride)[0] * proj))

    out, cache = stochpool2d_forward_eval(x, size, stride)
    proj = data.standard_normal(out.shape)
    dx = stochpool2d_backward_eval(proj, cache)
    numeric, _ = numerical_gradient(f, x)
    assert rel_error(dx, numeric) < 1e-8


def test_all_zero_window_gives_zero_output_and_gradient_without_warnings() -> None:
    data = np.random.default_rng(17)
    x = data.uniform(0.5, 2.0, (2, 4, 4, 3))
    x[:, :2, :2, :] = 0.0  # the top-left window of every channel and image is all zero
    x[1, 2:, 2:, 1] = 0.0  # and one more
    zero = np.zeros((2, 2, 2, 3), dtype=bool)
    zero[:, 0, 0, :] = True
    zero[1, 1, 1, 1] = True
    proj = data.standard_normal(zero.shape)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = stochpool2d_forward_eval(x, (2, 2), (2, 2))
        dx = stochpool2d_backward_eval(proj, cache)
        out_t, cache_t = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(0))
        dx_t = stochpool2d_backward_train(proj, cache_t)
    assert np.all(out[zero] == 0) and np.all(out[~zero] > 0)
    assert np.all(out_t[zero] == 0) and np.all(out_t[~zero] > 0)
    in_zero = np.repeat(np.repeat(zero, 2, axis=1), 2, axis=2)  # (2, 4, 4, 3) input positions
    assert np.all(dx[in_zero] == 0) and np.all(dx_t[in_zero] == 0)
    # Every other window still has its exact gradient (finite differences there only: a step
    # below zero inside an all-zero window would be a negative input).
    coords = [tuple(int(i) for i in c) for c in np.argwhere(~in_zero)]

    def f() -> float:
        return float(np.sum(stochpool2d_forward_eval(x, (2, 2), (2, 2))[0] * proj))

    numeric, _ = numerical_gradient(f, x, coords)
    assert rel_error(dx[~in_zero], numeric[~in_zero]) < 1e-8


# -- misuse -----------------------------------------------------------------------------------

def test_negative_input_is_an_error_quoting_the_minimum() -> None:
    x = images([[1.0, -0.25], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"non-negative.*-0\.25"):
        stochpool2d_forward_eval(x, (2, 2), (2, 2))
    with pytest.raises(ValueError, match=r"non-negative.*-0\.25"):
        stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(0))


def test_backward_refuses_the_other_modes_cache() -> None:
    x = images(WORKED)
    out, eval_cache = stochpool2d_forward_eval(x, (2, 2), (2, 2))
    _, train_cache = stochpool2d_forward_train(x, (2, 2), (2, 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match="stochpool2d_forward_train"):
        stochpool2d_backward_train(out, eval_cache)
    with pytest.raises(ValueError, match="stochpool2d_forward_eval"):
        stochpool2d_backward_eval(out, train_cache)
