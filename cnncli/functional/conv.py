"""2-D convolution (cross-correlation, as every deep-learning framework does).

Forward is a windowed dot product done as im2col + one matmul; backward is

    db = sum of dZ
    dW = input (x) dZ                       (a correlation of the input with dZ)
    dA = zero-padded dZ (x) rot180(W)       (a "full" convolution, done as col2im)

Shapes, batch last:
    x: (C, H, W, N)   w: (F, C, KH, KW)   b: (F,)   -> out: (F, OH, OW, N)
    OH = (H + pad_top + pad_bottom - KH) // stride_h + 1   (likewise OW)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

Pad = tuple[int, int, int, int]  # (top, bottom, left, right)


class ConvCache(NamedTuple):
    x_shape: tuple[int, int, int, int]
    cols: np.ndarray  # (C*KH*KW, OH*OW*N)
    w: np.ndarray
    stride: tuple[int, int]
    pad: Pad
    out_hw: tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output length along one axis: (size + pad_total - kernel) // stride + 1."""
    return (size + pad_total - kernel) // stride + 1


def _tap(i: int, j: int, oh: int, ow: int, stride: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (i, j) sees: each (OH,) / (OW,)."""
    sh, sw = stride
    return slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def pad_images(x: np.ndarray, pad: Pad) -> np.ndarray:
    """Zero-pad (C, H, W, N) to (C, H+top+bottom, W+left+right, N); no copy when pad is 0."""
    top, bottom, left, right = pad
    if not any(pad):
        return x
    c, h, w, n = x.shape
    xp = np.zeros((c, h + top + bottom, w + left + right, n), dtype=x.dtype)
    xp[:, top : top + h, left : left + w, :] = x
    return xp


def im2col(xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int]) -> np.ndarray:
    """Gather every window of a padded batch into columns.

    xp: (C, Hp, Wp, N) -> cols: (C, KH, KW, OH, OW, N), one strided copy per kernel tap.
    """
    c, hp, wp, n = xp.shape
    oh = conv_output_size(hp, kh, stride[0], 0)
    ow = conv_output_size(wp, kw, stride[1], 0)
    cols = np.empty((c, kh, kw, oh, ow, n), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _tap(i, j, oh, ow, stride)
            cols[:, i, j] = xp[:, rows, cs, :]
    return cols


def col2im(dcols: np.ndarray, padded_hw: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Adjoint of im2col: add every window's gradient back where it came from.

    dcols: (C, KH, KW, OH, OW, N) -> dxp: (C, Hp, Wp, N). Overlapping windows add up.
    """
    c, kh, kw, oh, ow, n = dcols.shape
    dxp = np.zeros((c, padded_hw[0], padded_hw[1], n), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _tap(i, j, oh, ow, stride)
            dxp[:, rows, cs, :] += dcols[:, i, j]
    return dxp


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple[int, int], pad: Pad
) -> tuple[np.ndarray, ConvCache]:
    """x: (C, H, W, N), w: (F, C, KH, KW), b: (F,) -> out: (F, OH, OW, N), cache."""
    c, h, wd, n = x.shape
    f, _, kh, kw = w.shape
    xp = pad_images(x, pad)
    cols = im2col(xp, kh, kw, stride)  # (C, KH, KW, OH, OW, N)
    oh, ow = cols.shape[3], cols.shape[4]
    cols = cols.reshape(c * kh * kw, oh * ow * n)
    out = w.reshape(f, -1) @ cols  # (F, C*KH*KW) @ (C*KH*KW, OH*OW*N) -> (F, OH*OW*N)
    out += b[:, None]
    return out.reshape(f, oh, ow, n), ConvCache(x.shape, cols, w, stride, pad, (oh, ow))


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """dout: (F, OH, OW, N) -> dx: (C, H, W, N), dw: (F, C, KH, KW), db: (F,).

    With input_grad=False, dx is None and its two passes (a matmul and col2im) are skipped:
    a network's first layer needs no gradient with respect to the images.
    """
    c, h, wd, n = cache.x_shape
    w = cache.w
    f, _, kh, kw = w.shape
    oh, ow = cache.out_hw
    top, bottom, left, right = cache.pad
    d2 = dout.reshape(f, oh * ow * n)
    db = d2.sum(axis=1)
    dw = (d2 @ cache.cols.T).reshape(w.shape)  # (F, OH*OW*N) @ (OH*OW*N, C*KH*KW)
    if not input_grad:
        return None, dw, db
    dcols = w.reshape(f, -1).T @ d2  # (C*KH*KW, F) @ (F, OH*OW*N)
    dcols = dcols.reshape(c, kh, kw, oh, ow, n)
    dxp = col2im(dcols, (h + top + bottom, wd + left + right), cache.stride)
    dx = dxp[:, top : top + h, left : left + wd, :]
    return np.ascontiguousarray(dx), dw, db
