"""Losses over a batch of columns, averaged over the batch.

    softmax cross-entropy: L = -mean_n log softmax(z_n)[y_n],     dL/dz = (p - onehot(y)) / N
    mean squared error:    L = mean_n 1/2 ||y_hat_n - onehot(y_n)||^2,
                           dL/dy_hat = (y_hat - onehot(y)) / N

Shapes, batch last: z, y_hat: (K, N); y: (N,) integer class labels.
"""

from __future__ import annotations

import numpy as np


def one_hot(y: np.ndarray, k: int, dtype: np.dtype) -> np.ndarray:
    """y: (N,) integers in [0, k) -> (K, N) with a 1 in row y[n] of column n."""
    t = np.zeros((k, y.shape[0]), dtype=dtype)
    t[y, np.arange(y.shape[0])] = 1
    return t


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z: (K, N) -> log softmax over K, stable: z - max - log(sum(exp(z - max)))."""
    shifted = z - z.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """z: (K, N) -> probabilities over K (columns sum to 1)."""
    return np.exp(log_softmax(z))


def softmax_cross_entropy_forward(
    z: np.ndarray, y: np.ndarray
) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """z: (K, N) logits, y: (N,) labels -> mean loss, cache (p, y)."""
    logp = log_softmax(z)
    n = z.shape[1]
    loss = -float(logp[y, np.arange(n)].mean(dtype=np.float64))
    return loss, (np.exp(logp), y)


def softmax_cross_entropy_backward(cache: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """-> dz: (K, N) = (p - onehot(y)) / N."""
    p, y = cache
    dz = p.copy()
    dz[y, np.arange(y.shape[0])] -= 1
    dz /= y.shape[0]
    return dz


def mse_forward(
    y_hat: np.ndarray, y: np.ndarray
) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """y_hat: (K, N), y: (N,) labels -> mean over N of 1/2 ||y_hat - onehot(y)||^2, cache."""
    diff = y_hat - one_hot(y, y_hat.shape[0], y_hat.dtype)
    loss = 0.5 * float((diff.astype(np.float64) ** 2).sum()) / y.shape[0]
    return loss, (diff, y)


def mse_backward(cache: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """-> d y_hat: (K, N) = (y_hat - onehot(y)) / N."""
    diff, y = cache
    return diff / diff.dtype.type(y.shape[0])
