"""functional/pool.py: the classic worked examples, first-max routing on ties, overlap, and the
fused relu + max-pool pair (same bits as the two in turn, finite differences)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import images

from cnncli.functional.activations import relu_backward, relu_forward
from cnncli.functional.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    relu_maxpool2d_backward,
    relu_maxpool2d_forward,
)
from cnncli.gradcheck import numerical_gradient, rel_error

GRID = np.arange(1, 17, dtype=np.float64).reshape(4, 4)


def test_avgpool_of_1_to_16_with_2x2_windows() -> None:
    out, _ = avgpool2d_forward(images(GRID), (2, 2), (2, 2))
    np.testing.assert_array_equal(out[0, :, :, 0], [[3.5, 5.5], [11.5, 13.5]])


def test_avgpool_backward_spreads_gradient_evenly() -> None:
    _, cache = avgpool2d_forward(images(GRID), (2, 2), (2, 2))
    dx = avgpool2d_backward(images([[1, 2], [8, 4]]), cache)
    expected = [[0.25, 0.25, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [2, 2, 1, 1], [2, 2, 1, 1]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_maxpool_backward_routes_gradient_to_argmax() -> None:
    x = images([[1, 3, 2, 1], [4, 2, 1, 5], [3, 1, 1, 0], [1, 2, 2, 3]])
    out, cache = maxpool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(out[0, :, :, 0], [[4, 5], [3, 3]])
    dx = maxpool2d_backward(images([[1, 2], [8, 4]]), cache)
    expected = [[0, 0, 0, 0], [1, 0, 0, 2], [8, 0, 0, 0], [0, 0, 0, 4]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_maxpool_backward_routes_ties_to_first_maximum_only() -> None:
    # An MNIST-like background: every value in most windows is the same.
    bg = -0.4242
    x = images([[bg, bg, bg, 2.0], [bg, bg, 2.0, 2.0], [bg, 1.0, bg, bg], [1.0, bg, bg, bg]])
    _, cache = maxpool2d_forward(x, (2, 2), (2, 2))
    dx = maxpool2d_backward(images([[1, 2], [8, 4]]), cache)
    expected = [[1, 0, 0, 2], [0, 0, 0, 0], [0, 8, 4, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    assert dx.sum() == 15  # each window's gradient lands exactly once


def test_maxpool_overlapping_3x3_stride_2_matches_naive(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 7, 7, 3))
    out, cache = maxpool2d_forward(x, (3, 3), (2, 2))
    dout = rng.standard_normal(out.shape)
    dx = maxpool2d_backward(dout, cache)
    ref_dx = np.zeros_like(x)
    for c in range(2):
        for n in range(3):
            for i in range(3):
                for j in range(3):
                    win = x[c, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, n]
                    assert out[c, i, j, n] == win.max()
                    a, b = np.unravel_index(np.argmax(win), win.shape)  # first max, row-major
                    ref_dx[c, 2 * i + a, 2 * j + b, n] += dout[c, i, j, n]
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-15)


def test_avgpool_overlapping_backward_adds_where_windows_overlap() -> None:
    x = np.zeros((1, 5, 5, 1))
    _, cache = avgpool2d_forward(x, (3, 3), (2, 2))
    dx = avgpool2d_backward(np.ones((1, 2, 2, 1)), cache)
    # The centre pixel (2, 2) sits in all four windows, each giving 1/9.
    assert dx[0, 2, 2, 0] == 4 / 9
    assert dx[0, 0, 0, 0] == 1 / 9
    assert np.isclose(dx.sum(), 4.0)


def test_pool_keeps_float32() -> None:
    x = np.ones((1, 4, 4, 2), dtype=np.float32)
    for fwd, bwd in ((maxpool2d_forward, maxpool2d_backward),
                     (avgpool2d_forward, avgpool2d_backward)):
        out, cache = fwd(x, (2, 2), (2, 2))
        assert out.dtype == np.float32 and bwd(out, cache).dtype == np.float32


def _naive_maxpool(x: np.ndarray, dout: np.ndarray, size: tuple[int, int],
                   stride: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Window by window with np.argmax (first max, row-major): the reference."""
    c_, _, _, n_ = x.shape
    oh, ow = dout.shape[1], dout.shape[2]
    out, dx = np.zeros(dout.shape), np.zeros_like(x)
    for c in range(c_):
        for n in range(n_):
            for i in range(oh):
                for j in range(ow):
                    r, s = i * stride[0], j * stride[1]
                    win = x[c, r : r + size[0], s : s + size[1], n]
                    out[c, i, j, n] = win.max()
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    dx[c, r + a, s + b, n] += dout[c, i, j, n]
    return out, dx


@pytest.mark.parametrize(("shape", "size", "stride"), [
    ((3, 8, 6, 5), (2, 2), (2, 2)),  # tiles exactly: backward assigns into every view
    ((2, 7, 9, 4), (2, 2), (2, 2)),  # odd sizes: the last row and column belong to no window
    ((2, 9, 9, 3), (3, 3), (3, 3)),
    ((2, 8, 9, 3), (2, 3), (2, 3)),
    ((1, 9, 9, 2), (2, 2), (3, 3)),  # gaps between windows
    ((2, 7, 7, 3), (3, 3), (2, 2)),  # overlapping: backward adds
])
def test_maxpool_matches_naive_first_max_with_many_ties(
    rng: np.random.Generator, shape: tuple[int, ...], size: tuple[int, int],
    stride: tuple[int, int],
) -> None:
    x = rng.integers(0, 3, shape).astype(np.float32)  # three values only: ties everywhere
    out, cache = maxpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    ref_out, ref_dx = _naive_maxpool(x, dout, size, stride)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(maxpool2d_backward(dout, cache), ref_dx, rtol=1e-6)


@pytest.mark.parametrize(("shape", "size", "stride"), [
    ((2, 8, 6, 3), (2, 2), (2, 2)), ((2, 7, 9, 3), (2, 2), (2, 2)), ((1, 9, 9, 2), (2, 2), (3, 3)),
])
def test_avgpool_non_overlapping_matches_naive(
    rng: np.random.Generator, shape: tuple[int, ...], size: tuple[int, int],
    stride: tuple[int, int],
) -> None:
    x = rng.standard_normal(shape)
    out, cache = avgpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape)
    dx = avgpool2d_backward(dout, cache)
    ref_dx = np.zeros_like(x)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            r, s = i * stride[0], j * stride[1]
            np.testing.assert_allclose(
                out[:, i, j], x[:, r : r + size[0], s : s + size[1]].mean(axis=(1, 2)))
            ref_dx[:, r : r + size[0], s : s + size[1]] += dout[:, i, j][:, None, None] / 4
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12)


# -- relu then max-pool, fused ------------------------------------------------------------------


def test_relu_maxpool_worked_example_routes_through_the_relu_only_where_it_passes() -> None:
    # windows: all negative (no gradient), a zero max with x_0 < 0 (relu(x) ties at 0: the
    # first, tap 0, is negative: no gradient), a zero max at tap 0 (tap 0 gets it), a tie of
    # positive values (the first of them gets it)
    x = images([[-1, -2, -3, 0], [-4, -1, 0, -1], [0, -1, 2, 1], [-2, 0, 2, 2]])
    out, cache = relu_maxpool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 0], [0, 2]])
    dx = relu_maxpool2d_backward(images([[1, 2], [8, 4]]), cache)
    expected = [[0, 0, 0, 0], [0, 0, 0, 0], [8, 0, 4, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    r, mask = relu_forward(x)  # the unfused pair agrees on the same worked example
    ref_out, ref_cache = maxpool2d_forward(r, (2, 2), (2, 2))
    np.testing.assert_array_equal(ref_out, out)
    np.testing.assert_array_equal(
        relu_backward(maxpool2d_backward(images([[1, 2], [8, 4]]), ref_cache), mask), dx)


@pytest.mark.parametrize(("shape", "size", "stride"), [
    ((6, 28, 28, 32), (2, 2), (2, 2)),  # LeNet's first pool, 32 images
    ((3, 7, 9, 5), (2, 2), (2, 2)),  # odd sizes: the last row and column belong to no window
    ((2, 9, 8, 3), (2, 3), (3, 3)),  # gaps between windows
])
def test_relu_maxpool_gives_the_bits_of_relu_then_maxpool(
    rng: np.random.Generator, shape: tuple[int, ...], size: tuple[int, int],
    stride: tuple[int, int],
) -> None:
    for trial in range(6):
        x = rng.standard_normal(shape).astype(np.float32)
        x[rng.random(shape) < 0.2] = 0.0  # zeros: ReLU ties and zero maxima
        x[rng.random(shape) < 0.1] = -0.0
        x[rng.random(shape) < 0.1] = 0.5  # ties between positive values
        if trial % 2:
            x = -np.abs(x)  # mostly all-negative windows
        r, mask = relu_forward(x)
        ref_out, ref_cache = maxpool2d_forward(r, size, stride)
        out, cache = relu_maxpool2d_forward(x, size, stride)
        assert out.dtype == np.float32 and out.tobytes() == ref_out.tobytes()
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dout[rng.random(dout.shape) < 0.1] = -0.0
        ref_dx = relu_backward(maxpool2d_backward(dout, ref_cache), mask)
        dx = relu_maxpool2d_backward(dout, cache)
        assert dx.dtype == np.float32 and dx.tobytes() == ref_dx.tobytes()


def test_relu_maxpool_overlapping_windows_give_the_same_values(rng: np.random.Generator) -> None:
    x = rng.integers(-2, 3, (2, 7, 7, 3)).astype(np.float64)  # ties and zeros everywhere
    r, mask = relu_forward(x)
    ref_out, ref_cache = maxpool2d_forward(r, (3, 3), (2, 2))
    out, cache = relu_maxpool2d_forward(x, (3, 3), (2, 2))
    np.testing.assert_array_equal(out, ref_out)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(relu_maxpool2d_backward(dout, cache),
                                  relu_backward(maxpool2d_backward(dout, ref_cache), mask))


@pytest.mark.parametrize(("size", "stride"), [((2, 2), (2, 2)), ((3, 3), (2, 2))])
def test_relu_maxpool_backward_matches_finite_differences(
    rng: np.random.Generator, size: tuple[int, int], stride: tuple[int, int],
) -> None:
    # distinct values 0.1 apart, at least 0.05 from 0: no kink within the steps (h = 2e-3)
    shape = (2, 7, 7, 3)
    n = int(np.prod(shape))
    x = rng.permutation((np.arange(n) - n / 2 + 0.5) * 0.1).reshape(shape)
    out, cache = relu_maxpool2d_forward(x, size, stride)
    proj = rng.standard_normal(out.shape)
    dx = relu_maxpool2d_backward(proj, cache)
    numeric, valid = numerical_gradient(
        lambda: float((relu_maxpool2d_forward(x, size, stride)[0] * proj).sum()), x)
    assert valid.all() and np.count_nonzero(dx) > 10
    assert rel_error(dx, numeric) < 1e-8
