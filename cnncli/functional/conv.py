"""2-D convolution (cross-correlation, as every deep-learning framework does).

Forward is a windowed dot product done as im2col + one matmul; backward is

    db = sum of dZ
    dW = input (x) dZ                       (a correlation of the input with dZ)
    dA = zero-padded dZ (x) rot180(W)       (a "full" convolution, done as W^T dZ + col2im)

Shapes, batch last:
    x: (C, H, W, N)   w: (F, C, KH, KW)   b: (F,)   -> out: (F, OH, OW, N)
    OH = (H + pad_top + pad_bottom - KH) // stride_h + 1   (likewise OW)

Speed and memory: the im2col matrix (C*KH*KW, OH*OW*N) is built and multiplied in bands of
output rows, so that each band is still in the CPU cache when the matmul reads it (the output
band is written in place: with the batch last, a band of output rows is one block of every
filter's row). A band holds at most BAND elements and about max(MIN_BAND_COLS,
MATMUL_MNK // (F*C*KH*KW)) columns: a skinny matmul such as a first layer's (6, 25) @ (25, L)
ran 2-2.5x faster in pieces of about 6,000 columns than in one piece of 25,000 or 50,000
(OpenBLAS 0.3.31, Xeon Cascade Lake: it has kernels for small matrices, and the pieces stay
in the cache), while a wider one (16, 150) @ (150, L) gained nothing below 4,096 columns.

Forward keeps the whole matrix for backward only when
it is small (at most KEEP_COLS elements); a bigger one is not kept, and backward rebuilds it
band by band from the padded input: measured on whole training steps, copying it again while
it is in cache beats writing it to memory and reading it back, and a large evaluation batch
holds a few megabytes instead of a hundred.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pad = tuple[int, int, int, int]  # (top, bottom, left, right)

#: im2col matrices with at most this many elements are kept from forward for backward
KEEP_COLS = 1 << 20
#: at most this many im2col elements are built and multiplied at a time
BAND = 1 << 20
#: a band's matmul does about this many multiply-adds (F * K * columns) ...
MATMUL_MNK = 1_000_000
#: ... but has at least this many columns
MIN_BAND_COLS = 4096


class ConvCache(NamedTuple):
    x_shape: tuple[int, int, int, int]
    xp: np.ndarray  # (C, Hp, Wp, N) the zero-padded input
    cols: np.ndarray | None  # (C*KH*KW, OH*OW*N) im2col of xp, None when too big to keep
    w: np.ndarray
    stride: tuple[int, int]
    pad: Pad
    out_hw: tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output length along one axis: (size + pad_total - kernel) // stride + 1."""
    return (size + pad_total - kernel) // stride + 1


def _tap(i: int, j: int, rows: tuple[int, int], ow: int,
         stride: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (i, j) sees for the output rows
    rows[0] .. rows[1]-1 and every output column: each (rows[1]-rows[0],) / (OW,)."""
    sh, sw = stride
    r0, r1 = rows
    return slice(r0 * sh + i, (r1 - 1) * sh + i + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def bands(oh: int, per_row: int, budget: int) -> list[tuple[int, int]]:
    """Split output rows 0..OH-1 into even bands of at most max(1, budget // per_row) rows."""
    rows = max(1, budget // max(per_row, 1))
    count = -(-oh // rows)
    size = -(-oh // count)
    return [(r, min(r + size, oh)) for r in range(0, oh, size)]


def band_parts(oh: int, k: int, f: int, row: int) -> list[tuple[int, int]]:
    """Bands of output rows for a conv with K = C*KH*KW, F filters and `row` = OW*N columns
    per output row: at most BAND elements and about max(MIN_BAND_COLS, MATMUL_MNK // (F*K))
    columns each (see the module docstring)."""
    columns = max(MIN_BAND_COLS, MATMUL_MNK // max(f * k, 1))
    return bands(oh, k * row, min(BAND, k * columns))


def pad_images(x: np.ndarray, pad: Pad) -> np.ndarray:
    """Zero-pad (C, H, W, N) to (C, H+top+bottom, W+left+right, N); no copy when pad is 0."""
    top, bottom, left, right = pad
    if not any(pad):
        return x
    c, h, w, n = x.shape
    xp = np.zeros((c, h + top + bottom, w + left + right, n), dtype=x.dtype)
    xp[:, top : top + h, left : left + w, :] = x
    return xp


def im2col(xp: np.ndarray, cols: np.ndarray, rows: tuple[int, int],
           stride: tuple[int, int], windows: np.ndarray | None = None) -> None:
    """Gather the windows of output rows rows[0] .. rows[1]-1 into cols, in one copy.

    xp: (C, Hp, Wp, N) -> cols: (C, KH, KW, R, OW, N) with R = rows[1] - rows[0]; cols may be
    a view of a band of a bigger (C*KH*KW, L) matrix. The source is a read-only window view of xp,
    (C, R, OW, N, KH, KW) transposed to cols' order: one copy moving runs of OW*N contiguous
    values (stride 1) or N (strided), instead of one copy per kernel tap. `windows`, that view
    made once by the caller for all bands, saves making it again per band.
    """
    _, kh, kw, r, ow, _ = cols.shape
    sh, sw = stride
    r0 = rows[0]
    if windows is None:  # (C, Hp-KH+1, Wp-KW+1, N, KH, KW)
        windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))
    picked = windows[:, r0 * sh : (r0 + r - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
    np.copyto(cols, picked.transpose(0, 4, 5, 1, 2, 3))


def col2im_matmul(w_taps: np.ndarray, d: np.ndarray, dxp: np.ndarray, rows: tuple[int, int],
                  ow: int, stride: tuple[int, int], tmp: np.ndarray) -> None:
    """dA for a band of output rows: W^T dZ scattered back to the windows, tap by tap, into dxp.

    w_taps: (KH, KW, C, F), the weight with its taps first; d: (F, R*OW*N), dZ of the output
    rows rows[0] .. rows[1]-1 (R of them); dxp: (C, Hp, Wp, N), added to in place (overlapping
    windows add up); tmp: (C, R*OW*N) scratch. Tap (i, j) adds W[:, :, i, j]^T @ d to the
    padded-input positions it saw. This is the (K, F) @ (F, R*OW*N) matmul followed by col2im
    (the adjoint of im2col), one tap at a time: the same dot products added in the same order,
    without writing the whole (C*KH*KW, R*OW*N) matrix out and reading it back (LeNet's
    second conv's input gradient: 25-33% less time; the same bits with OpenBLAS, except
    where a product becomes a matrix-vector one, rounded differently: one input channel, or a
    band of a single column).
    """
    kh, kw, c, _ = w_taps.shape
    r, n = rows[1] - rows[0], dxp.shape[3]
    t4 = tmp.reshape(c, r, ow, n)
    for i in range(kh):
        for j in range(kw):
            np.matmul(w_taps[i, j], d, out=tmp)  # (C, F) @ (F, R*OW*N)
            rr, cc = _tap(i, j, rows, ow, stride)
            dxp[:, rr, cc, :] += t4


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple[int, int], pad: Pad
) -> tuple[np.ndarray, ConvCache]:
    """x: (C, H, W, N), w: (F, C, KH, KW), b: (F,) -> out: (F, OH, OW, N), cache."""
    c, h, wd, n = x.shape
    f, _, kh, kw = w.shape
    xp = pad_images(x, pad)
    oh = conv_output_size(xp.shape[1], kh, stride[0], 0)
    ow = conv_output_size(xp.shape[2], kw, stride[1], 0)
    k, row = c * kh * kw, ow * n  # im2col rows; output values per output row and filter
    w2 = w.reshape(f, k)
    out = np.empty((f, oh, ow, n), dtype=np.result_type(x.dtype, w.dtype))
    out2 = out.reshape(f, oh * row)
    parts = band_parts(oh, k, f, row)
    keep = k * oh * row <= KEEP_COLS
    longest = max(r1 - r0 for r0, r1 in parts)
    cols = np.empty((k, (oh if keep else longest) * row), dtype=x.dtype)
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2)) if len(parts) > 1 else None
    for r0, r1 in parts:
        band = cols[:, r0 * row : r1 * row] if keep else cols[:, : (r1 - r0) * row]  # views
        im2col(xp, band.reshape(c, kh, kw, r1 - r0, ow, n), (r0, r1), stride, windows)
        o = out2[:, r0 * row : r1 * row]  # (F, R*OW*N), a view into out
        np.matmul(w2, band, out=o)  # (F, K) @ (K, R*OW*N)
        o += b[:, None]
    kept = cols if keep else None
    cache = ConvCache(x.shape, xp, kept, w, stride, pad, (oh, ow))
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """dout: (F, OH, OW, N) -> dx: (C, H, W, N), dw: (F, C, KH, KW), db: (F,).

    With input_grad=False, dx is None and its matmuls and col2im are skipped:
    a network's first layer needs no gradient with respect to the images.
    """
    c, h, wd, n = cache.x_shape
    xp, w = cache.xp, cache.w
    f, _, kh, kw = w.shape
    oh, ow = cache.out_hw
    k, row = c * kh * kw, ow * n
    d2 = dout.reshape(f, oh * row)
    db = np.einsum("ij->i", d2)  # row sums; 3x faster than d2.sum(axis=1) on these long rows
    parts = band_parts(oh, k, f, row)
    longest = max(r1 - r0 for r0, r1 in parts)
    kept = cache.cols
    if kept is None:  # rebuilt band by band below
        cols = np.empty((k, longest * row), dtype=xp.dtype)
        windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))
    dtype = np.result_type(dout.dtype, w.dtype)
    # dW^T = sum over bands of cols_band @ d_band^T: (K, R*OW*N) @ (R*OW*N, F). This way round
    # (the long axis as the reduction of a (K, F) result) measured 1.3-2x faster than
    # d @ cols^T for both LeNet convs.
    dwt = np.zeros((k, f), dtype=np.result_type(dout.dtype, xp.dtype))
    part = np.empty_like(dwt)
    dxp = np.zeros(xp.shape, dtype=dtype) if input_grad else None
    w_taps = np.ascontiguousarray(w.transpose(2, 3, 1, 0)) if input_grad else None
    tmp = np.empty(c * longest * row, dtype=dtype) if input_grad else None
    for r0, r1 in parts:
        d = d2[:, r0 * row : r1 * row]  # (F, R*OW*N)
        shape6 = (c, kh, kw, r1 - r0, ow, n)
        if kept is None:
            band = cols[:, : (r1 - r0) * row]  # (K, R*OW*N), a view
            im2col(xp, band.reshape(shape6), (r0, r1), cache.stride, windows)
        else:
            band = kept[:, r0 * row : r1 * row]  # (K, R*OW*N), a view
        np.matmul(band, d.T, out=part)
        dwt += part
        if dxp is not None and w_taps is not None and tmp is not None:
            scratch = tmp[: c * (r1 - r0) * row].reshape(c, (r1 - r0) * row)  # contiguous
            col2im_matmul(w_taps, d, dxp, (r0, r1), ow, cache.stride, scratch)
    dw = np.ascontiguousarray(dwt.T)
    dw = dw.reshape(w.shape)
    if dxp is None:
        return None, dw, db
    top, bottom, left, right = cache.pad
    if any(cache.pad):
        dx = np.ascontiguousarray(dxp[:, top : top + h, left : left + wd, :])
    else:
        dx = dxp
    return dx, dw, db
