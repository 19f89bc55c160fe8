"""Max and average pooling over (possibly overlapping) windows.

Max-pool backward routes each window's gradient to exactly one position, the
FIRST maximum in row-major window order: on MNIST most normalised pixels share
the background value, so ties are the common case, and spreading the gradient
to every tie would make conv gradients wrong by tens of percent. Average-pool
backward spreads each gradient evenly over its window.

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
    """Yield (tap index, (rows, cols)) for every window tap, in row-major order."""
    oh = pool_output_size(x_shape[1], size[0], stride[0])
    ow = pool_output_size(x_shape[2], size[1], stride[1])
    for i in range(size[0]):
        for j in range(size[1]):
            rows = slice(i, i + stride[0] * (oh - 1) + 1, stride[0])
            cols = slice(j, j + stride[1] * (ow - 1) + 1, stride[1])
            yield i * size[1] + j, (rows, cols)


def maxpool2d_forward(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, PoolCache]:
    """x: (C, H, W, N) -> out: (C, OH, OW, N), cache with the first-max tap of each window."""
    out = None
    argmax = None
    for t, (rows, cols) in _taps(x.shape, size, stride):
        v = x[:, rows, cols, :]
        if out is None:
            out = v.copy()
            argmax = np.zeros(v.shape, dtype=np.int8 if size[0] * size[1] < 128 else np.int32)
            continue
        better = v > out  # strictly greater: an equal later value never takes over
        np.copyto(out, v, where=better)
        np.copyto(argmax, t, where=better)
    return out, PoolCache(x.shape, size, stride, argmax)


def maxpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N); each window's gradient goes to its first max."""
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    for t, (rows, cols) in _taps(cache.x_shape, cache.size, cache.stride):
        dx[:, rows, cols, :] += np.where(cache.argmax == t, dout, 0)
    return dx


def avgpool2d_forward(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, PoolCache]:
    """x: (C, H, W, N) -> out: (C, OH, OW, N), the mean of each window."""
    out = None
    for _, (rows, cols) in _taps(x.shape, size, stride):
        v = x[:, rows, cols, :]
        out = v.copy() if out is None else out + v
    out *= x.dtype.type(1.0 / (size[0] * size[1]))
    return out, PoolCache(x.shape, size, stride, None)


def avgpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N); each gradient spread evenly over its window."""
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    share = dout * dout.dtype.type(1.0 / (cache.size[0] * cache.size[1]))
    for _, (rows, cols) in _taps(cache.x_shape, cache.size, cache.stride):
        dx[:, rows, cols, :] += share
    return dx
