"""Fully connected (affine) layer: out = W x + b, one sample per column.

Shapes, batch last:
    x: (D, N)   w: (U, D)   b: (U,)   -> out: (U, N)
"""

from __future__ import annotations

import numpy as np


def dense_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """x: (D, N), w: (U, D), b: (U,) -> out: (U, N), cache (x, w)."""
    out = w @ x
    out += b[:, None]
    return out, (x, w)


def dense_backward(
    dout: np.ndarray, cache: tuple[np.ndarray, np.ndarray], input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """dout: (U, N) -> dx: (D, N) = W^T dout, dw: (U, D) = dout x^T, db: (U,) = sum over N.

    With input_grad=False, dx is None (not computed).
    """
    x, w = cache
    dx = w.T @ dout if input_grad else None
    return dx, dout @ x.T, dout.sum(axis=1)
