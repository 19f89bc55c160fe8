"""functional/pool.py: the classic worked examples, first-max routing on ties, overlap."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import images

from cnncli.functional.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

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
