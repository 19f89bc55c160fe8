"""Batch normalisation (Ioffe & Szegedy 2015): per channel after conv, per feature after dense.

Shapes, batch last; statistics per row of axis 0, over every other axis:
    x: (C, H, W, N)  per channel c over (H, W, N): M = H W N values per statistic
    x: (D, N)        per feature d over N:         M = N values per statistic
    gamma, beta, running_mean, running_var: (C,) or (D,)  -> out: the shape of x

Training normalises with the batch's own statistics, the BIASED variance (divide by M):

    mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
    out = gamma xhat + beta

and returns new running statistics, as PyTorch does (momentum weighs the NEW batch; Keras's
momentum=0.99 is this momentum=0.01), the running variance taking the UNBIASED estimate:

    running_mean' = (1 - momentum) running_mean + momentum mu
    running_var'  = (1 - momentum) running_var  + momentum var M / (M - 1)

Evaluation normalises with the running statistics, which are constants there, and returns them
unchanged. Nothing is updated in place: the caller stores the returned statistics (a layer's
buffers), so the functions stay pure.

Backward, training (mu and var depend on x), the compact hand-derived form with
sigma = sqrt(var + eps) and sums over the M values of each row:

    dbeta  = sum(dout)
    dgamma = sum(dout xhat)
    dx     = gamma / (M sigma) (M dout - dbeta - xhat dgamma)

Backward, evaluation (running statistics constant): dx = gamma dout / sigma, same dgamma, dbeta.

Every pass works on the (C, M) view of x (a free reshape of a C-contiguous batch-last array:
each row is one channel's M values, contiguous). The plain row sums are matrix-vector products
with a vector of ones (BLAS, several times faster than ndarray.sum along rows), the row dot
products einsum('ij,ij->i') (no temporary); float32 in, float32 out, float64 likewise.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from cnncli.errors import TrainingError


class BatchNormCache(NamedTuple):
    xhat: np.ndarray | None  # training: (C, M) normalised input (x - mu) / sigma
    x: np.ndarray | None  # evaluation: (C, M) the input (xhat is recomputed in backward)
    mean: np.ndarray  # (C,) the mean that normalised: the batch's or the running one
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps) of the variance that normalised
    gamma: np.ndarray  # (C,)
    shape: tuple[int, ...]  # the shape of x
    training: bool


@lru_cache(maxsize=32)
def _ones(m: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of m ones: x2 @ ones is the row sums of x2 (C, m)."""
    ones = np.ones(m, dtype=dtype)
    ones.flags.writeable = False
    return ones


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormCache, np.ndarray, np.ndarray]:
    """x: (C, H, W, N) or (D, N) -> (out, cache, new_running_mean, new_running_var).

    out has the shape and dtype of x; gamma, beta and the running statistics are (C,).
    training=True normalises with the batch statistics (biased variance) and returns updated
    running statistics (unbiased variance, momentum weighing the batch); training=False
    normalises with the running statistics and returns those same arrays. Raises TrainingError
    in training when a statistic would rest on a single value (M = 1, e.g. a (D, 1) batch):
    its unbiased variance is undefined.
    """
    c = x.shape[0]
    x2 = x.reshape(c, -1)  # (C, M): a view when x is C-contiguous
    m = x2.shape[1]
    t = x.dtype.type
    col = (slice(None), None)  # a (C,) vector as a (C, 1) column
    if not training:
        inv_std = 1.0 / np.sqrt(running_var.astype(x.dtype) + t(eps))
        scale = gamma * inv_std
        out = x2 * scale[col]
        out += (beta - running_mean * scale)[col]
        cache = BatchNormCache(None, x2, running_mean.astype(x.dtype), inv_std, gamma,
                               x.shape, False)
        return out.reshape(x.shape), cache, running_mean, running_var
    if m < 2:
        raise TrainingError(f"batchnorm: training needs at least 2 values per channel, "
                            f"received an input of shape {x.shape}")
    ones = _ones(m, x.dtype)
    mean = (x2 @ ones) / t(m)
    xhat = x2 - mean[col]  # x - mu, normalised in place below
    var = np.einsum("ij,ij->i", xhat, xhat) / t(m)  # biased
    inv_std = 1.0 / np.sqrt(var + t(eps))
    xhat *= inv_std[col]
    out = xhat * gamma[col]
    out += beta[col]
    mom = momentum
    new_mean = (1.0 - mom) * running_mean + mom * mean
    new_var = (1.0 - mom) * running_var + mom * (var * (m / (m - 1.0)))
    new_mean = new_mean.astype(running_mean.dtype, copy=False)
    new_var = new_var.astype(running_var.dtype, copy=False)
    cache = BatchNormCache(xhat, None, mean, inv_std, gamma, x.shape, True)
    return out.reshape(x.shape), cache, new_mean, new_var


def batchnorm_backward(
    dout: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: the shape of x -> (dx: the shape of x, dgamma: (C,), dbeta: (C,)).

    Training: dx = gamma / (M sigma) (M dout - sum(dout) - xhat sum(dout xhat)), computed as
    gamma / sigma (dout - sum(dout) / M - xhat sum(dout xhat) / M) in four passes over one
    new array. Evaluation: dx = gamma dout / sigma.
    """
    c = cache.shape[0]
    d2 = dout.reshape(c, -1)  # (C, M)
    m = d2.shape[1]
    t = dout.dtype.type
    col = (slice(None), None)
    scale = cache.gamma * cache.inv_std  # gamma / sigma, (C,)
    dbeta = d2 @ _ones(m, dout.dtype)
    if not cache.training:
        xhat = cache.x - cache.mean[col]
        xhat *= cache.inv_std[col]
        dgamma = np.einsum("ij,ij->i", d2, xhat)
        dx = d2 * scale[col]
        return dx.reshape(cache.shape), dgamma, dbeta
    xhat = cache.xhat
    dgamma = np.einsum("ij,ij->i", d2, xhat)
    dx = xhat * (-dgamma / t(m))[col]
    dx += d2
    dx -= (dbeta / t(m))[col]
    dx *= scale[col]
    return dx.reshape(cache.shape), dgamma, dbeta
