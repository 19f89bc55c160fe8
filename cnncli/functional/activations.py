"""Element-wise activations and dropout. Any shape; the output has the input's shape.

    relu'(z)       = 1 where z >= 0, else 0
    leaky_relu'(z) = 1 where z >= 0, else alpha
    sigmoid'(z)    = s (1 - s)
    tanh'(z)       = 1 - t^2
"""

from __future__ import annotations

import numpy as np


def relu_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z: any shape -> max(z, 0), cache: the mask z >= 0.

    The zero is a row of zeros broadcast along the last axis: NumPy's maximum against an
    array is vectorised, against a scalar it is not (2-3x slower).
    """
    zero = np.zeros(z.shape[-1:], dtype=z.dtype)
    return np.maximum(z, zero), z >= 0


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pass the gradient where z >= 0."""
    return dout * mask


def leaky_relu_forward(z: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """z -> z where z >= 0 else alpha z; cache: the slope at each element.

    slope = alpha + (1 - alpha) [z >= 0], by arithmetic: np.where with scalar branches is
    an order of magnitude slower.
    """
    slope = (z >= 0) * z.dtype.type(1.0 - alpha)
    slope += z.dtype.type(alpha)
    return z * slope, slope


def leaky_relu_backward(dout: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Multiply the gradient by the local slope (1 or alpha)."""
    return dout * slope


def sigmoid_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s = 1 / (1 + e^-z), computed as (1 + tanh(z/2)) / 2, which never overflows."""
    half = z.dtype.type(0.5)
    s = half * (1 + np.tanh(half * z))
    return s, s


def sigmoid_backward(dout: np.ndarray, s: np.ndarray) -> np.ndarray:
    """sigmoid'(z) = s (1 - s)."""
    return dout * s * (1 - s)


def tanh_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t = tanh(z)."""
    t = np.tanh(z)
    return t, t


def tanh_backward(dout: np.ndarray, t: np.ndarray) -> np.ndarray:
    """tanh'(z) = 1 - t^2."""
    return dout * (1 - t * t)


def dropout_forward(
    x: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout at training time: keep each unit with p = 1 - rate, scale by 1/p.

    The expected output equals x, so evaluation is the identity. Cache: the scaled mask.
    """
    keep = 1.0 - rate
    mask = (rng.random(x.shape, dtype=np.float64) < keep).astype(x.dtype)
    mask *= x.dtype.type(1.0 / keep)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The gradient flows only through the kept units, with the same scale."""
    return dout * mask
