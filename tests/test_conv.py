"""functional/conv.py: worked examples of the derivation, naive references, dtype."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import images

from cnncli.functional import conv
from cnncli.functional.conv import conv2d_backward, conv2d_forward
from cnncli.gradcheck import numerical_gradient, rel_error

BINARY = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
KERNEL = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def correlate_valid(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Naive 2-D valid cross-correlation of one plane with one kernel (loops: a reference)."""
    oh, ow = a.shape[0] - k.shape[0] + 1, a.shape[1] - k.shape[1] + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (a[i : i + k.shape[0], j : j + k.shape[1]] * k).sum()
    return out


def test_conv_forward_worked_example_binary_image() -> None:
    x = images(BINARY)
    w = np.array(KERNEL, dtype=np.float64)[None, None]
    out, _ = conv2d_forward(x, w, np.zeros(1), (1, 1), (0, 0, 0, 0))
    assert out.shape == (1, 3, 3, 1)
    assert out[0, 0, 0, 0] == 4
    np.testing.assert_array_equal(out[0, :, :, 0], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_conv_forward_matches_naive_multichannel_strided_padded(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 7, 8, 2))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    out, _ = conv2d_forward(x, w, b, (2, 1), (1, 1, 0, 1))
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)))
    for n in range(2):
        for f in range(4):
            full = sum(correlate_valid(xp[c, :, :, n], w[f, c]) for c in range(3)) + b[f]
            np.testing.assert_allclose(out[f, :, :, n], full[::2, ::1], rtol=1e-12, atol=1e-12)
    assert out.shape == (4, (7 + 2 - 3) // 2 + 1, (8 + 1 - 2) // 1 + 1, 2)


def test_conv_backward_dx_is_full_convolution_of_padded_dz_with_rot180_kernel(
    rng: np.random.Generator,
) -> None:
    x = rng.standard_normal((1, 6, 6, 1))
    w = rng.standard_normal((1, 1, 3, 3))
    _, cache = conv2d_forward(x, w, np.zeros(1), (1, 1), (0, 0, 0, 0))
    dz = rng.standard_normal((1, 4, 4, 1))
    dx, dw, db = conv2d_backward(dz, cache)
    padded = np.pad(dz[0, :, :, 0], 2)  # zero-pad dZ by kernel - 1 on every side
    expected = correlate_valid(padded, np.rot90(w[0, 0], 2))
    np.testing.assert_allclose(dx[0, :, :, 0], expected, rtol=1e-12)


def test_conv_backward_dw_is_input_convolved_with_dz_and_db_sum(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 2, 3, 2))
    _, cache = conv2d_forward(x, w, np.zeros(3), (1, 1), (0, 0, 0, 0))
    dz = rng.standard_normal((3, 4, 4, 3))
    _, dw, db = conv2d_backward(dz, cache)
    for f in range(3):
        for c in range(2):
            expected = sum(correlate_valid(x[c, :, :, n], dz[f, :, :, n]) for n in range(3))
            np.testing.assert_allclose(dw[f, c], expected, rtol=1e-12)
    np.testing.assert_allclose(db, dz.sum(axis=(1, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize(
    ("stride", "pad"), [((1, 1), (0, 0, 0, 0)), ((2, 2), (1, 1, 1, 1)), ((2, 1), (2, 1, 0, 1))]
)
def test_conv_backward_matches_finite_differences(
    rng: np.random.Generator, stride: tuple[int, int], pad: tuple[int, int, int, int]
) -> None:
    x = rng.standard_normal((2, 7, 6, 2))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    out, cache = conv2d_forward(x, w, b, stride, pad)
    proj = rng.standard_normal(out.shape)

    def f() -> float:
        return float((conv2d_forward(x, w, b, stride, pad)[0] * proj).sum())

    dx, dw, db = conv2d_backward(proj, cache)
    for analytic, arr in ((dx, x), (dw, w), (db, b)):
        numeric, _ = numerical_gradient(f, arr)
        assert rel_error(analytic, numeric) < 1e-8


def test_conv_keeps_float32(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    out, cache = conv2d_forward(x, w, np.zeros(2, np.float32), (1, 1), (1, 1, 1, 1))
    dx, dw, db = conv2d_backward(out, cache)
    assert {a.dtype for a in (out, dx, dw, db)} == {np.dtype(np.float32)}


@pytest.mark.parametrize(
    ("stride", "pad"), [((1, 1), (2, 2, 2, 2)), ((2, 2), (1, 1, 1, 1)), ((2, 1), (2, 1, 0, 1))]
)
@pytest.mark.parametrize(("band", "keep"), [(1, 0), (30, 0), (30, 10**9)])
def test_conv_in_bands_and_rebuilt_columns_match_one_shot(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, stride: tuple[int, int],
    pad: tuple[int, int, int, int], band: int, keep: int,
) -> None:
    # band=1: one output row at a time; keep=0: backward rebuilds im2col from the padded input
    x = rng.standard_normal((2, 9, 8, 3))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    out, cache = conv2d_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(out.shape)
    expected = conv2d_backward(dout, cache)
    monkeypatch.setattr(conv, "BAND", band)
    monkeypatch.setattr(conv, "KEEP_COLS", keep)
    out_b, cache_b = conv2d_forward(x, w, b, stride, pad)
    assert (cache_b.cols is None) == (keep == 0)
    np.testing.assert_allclose(out_b, out, rtol=1e-12, atol=1e-12)
    for got, want in zip(conv2d_backward(dout, cache_b), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    dx, dw, db = conv2d_backward(dout, cache_b, input_grad=False)
    assert dx is None
    np.testing.assert_allclose(dw, expected[1], rtol=1e-12)


def test_bands_cover_every_row_once_and_evenly() -> None:
    assert conv.bands(28, 100, 1000) == [(0, 10), (10, 20), (20, 28)]
    assert conv.bands(5, 100, 10**9) == [(0, 5)]
    assert conv.bands(3, 100, 1) == [(0, 1), (1, 2), (2, 3)]  # never less than a row
