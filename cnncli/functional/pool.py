"""Max and average pooling over (possibly overlapping) windows.

Max-pool backward routes each window's gradient to exactly one position, the
FIRST maximum in row-major window order: on MNIST most normalised pixels share
the background value, so ties are the common case, and spreading the gradient
to every tie would make conv gradients wrong by tens of percent. Average-pool
backward spreads each gradient evenly over its window.

Every pass works on whole-batch strided views, one per window tap: tap (i, j)
of every window is x[:, i::stride_h, j::stride_w, :] (cut to OH x OW), a view
whose innermost run is the contiguous batch axis. When the windows do not
overlap (stride >= size, e.g. the usual 2x2 with stride 2), backward writes
each tap's gradient straight into its own view of dx; otherwise it adds.

Shapes, batch last:
    x: (C, H, W, N) -> out: (C, OH, OW, N),  OH = (H - size_h) // stride_h + 1
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np


class PoolCache(NamedTuple):
    x_shape: tuple[int, int, int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    argmax: np.ndarray | None  # (C, OH, OW, N) tap index of the first max (max-pool only)


def pool_output_size(size: int, window: int, stride: int) -> int:
    """Output length along one axis: (size - window) // stride + 1 (no padding)."""
    return (size - window) // stride + 1


def _taps(
    x_shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]
) -> Iterator[tuple[int, tuple[slice, slice]]]:
    """Yield (tap index, (rows, cols)) for every window tap, in row-major order.

    x[:, rows, cols, :] is that tap of every window at once: (C, OH, OW, N).
    """
    oh = pool_output_size(x_shape[1], size[0], stride[0])
    ow = pool_output_size(x_shape[2], size[1], stride[1])
    for i in range(size[0]):
        for j in range(size[1]):
            rows = slice(i, i + stride[0] * (oh - 1) + 1, stride[0])
            cols = slice(j, j + stride[1] * (ow - 1) + 1, stride[1])
            yield i * size[1] + j, (rows, cols)


def _disjoint(size: tuple[int, int], stride: tuple[int, int]) -> bool:
    """Whether no input position lies in two windows (so backward can assign, not add)."""
    return stride[0] >= size[0] and stride[1] >= size[1]


def _covers(x_shape: tuple[int, ...], size: tuple[int, int], stride: tuple[int, int]) -> bool:
    """Whether the windows tile the input exactly (every position in exactly one window)."""
    return (size == stride and x_shape[1] % size[0] == 0 and x_shape[2] % size[1] == 0)


def maxpool2d_forward(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, PoolCache]:
    """x: (C, H, W, N) -> out: (C, OH, OW, N), cache with the first-max tap of each window.

    The first maximum's tap index is the number of leading taps below the maximum:
    argmax = sum_t [v_0 < max and ... and v_t < max], a few boolean passes instead of a
    masked copy per tap.
    """
    views = [x[:, rows, cols, :] for _, (rows, cols) in _taps(x.shape, size, stride)]
    out = views[0].copy() if len(views) == 1 else np.maximum(views[0], views[1])
    for v in views[2:]:
        np.maximum(out, v, out=out)
    itype = np.int8 if len(views) < 128 else np.int32
    argmax = np.zeros(out.shape, dtype=itype)
    below = np.empty(out.shape, dtype=bool)  # v_0 < max and ... and v_t < max
    step = np.empty(out.shape, dtype=bool)
    for t, v in enumerate(views[:-1]):  # the last tap never adds: some tap holds the max
        if t == 0:
            np.less(v, out, out=below)
        else:
            np.less(v, out, out=step)
            below &= step
        argmax += below  # bool counts as 0/1
    return out, PoolCache(x.shape, size, stride, argmax)


def maxpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N); each window's gradient goes to its first max."""
    if cache.argmax is None:
        raise ValueError("maxpool2d_backward needs a cache from maxpool2d_forward")
    disjoint = _disjoint(cache.size, cache.stride)
    covered = _covers(cache.x_shape, cache.size, cache.stride)
    dx = np.empty(cache.x_shape, dtype=dout.dtype) if covered else np.zeros(
        cache.x_shape, dtype=dout.dtype)
    hit = np.empty(dout.shape, dtype=bool)
    for t, (rows, cols) in _taps(cache.x_shape, cache.size, cache.stride):
        np.equal(cache.argmax, t, out=hit)
        if disjoint:
            np.multiply(dout, hit, out=dx[:, rows, cols, :])
        else:
            dx[:, rows, cols, :] += dout * hit
    return dx


def avgpool2d_forward(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, PoolCache]:
    """x: (C, H, W, N) -> out: (C, OH, OW, N), the mean of each window."""
    out = None
    for _, (rows, cols) in _taps(x.shape, size, stride):
        v = x[:, rows, cols, :]
        if out is None:
            out = v.copy()
        else:
            out += v
    out *= x.dtype.type(1.0 / (size[0] * size[1]))
    return out, PoolCache(x.shape, size, stride, None)


def avgpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N); each gradient spread evenly over its window."""
    disjoint = _disjoint(cache.size, cache.stride)
    covered = _covers(cache.x_shape, cache.size, cache.stride)
    dx = np.empty(cache.x_shape, dtype=dout.dtype) if covered else np.zeros(
        cache.x_shape, dtype=dout.dtype)
    share = dout * dout.dtype.type(1.0 / (cache.size[0] * cache.size[1]))
    for _, (rows, cols) in _taps(cache.x_shape, cache.size, cache.stride):
        if disjoint:
            dx[:, rows, cols, :] = share
        else:
            dx[:, rows, cols, :] += share
    return dx
