"""Stochastic pooling (Zeiler and Fergus, 2013) over (possibly overlapping) windows.

Each window of non-negative activations a_1..a_T (T = size_h * size_w taps) defines the
probabilities p_i = a_i / S1, with S1 = sum_i a_i and S2 = sum_i a_i^2.

Training: pick ONE tap k of each window with probability p_k and output a_k. Backward routes
the window's gradient to that tap only, as max-pool routes to its argmax.

Evaluation: output the probability-weighted average sum_i p_i a_i = S2 / S1, which is the
expected value of the training output, with its exact gradient.

An all-zero window has no distribution: it outputs 0 in both modes and routes no gradient
(no division by zero, no NaN, no warning).

Negative inputs raise ValueError: the probabilities are only defined for a_i >= 0, so the
layer must follow a non-negative activation (ReLU). They are not clipped: a negative value
here means the network is wired wrong, and clipping would hide it as a silent extra ReLU.

Randomness: training forward makes exactly one call, rng.random(out.shape, dtype), with dtype
float32 for float32 inputs and float64 otherwise, so a generator in a given state always
gives the same samples and is left in the same state (resume stays bit-identical).

Every pass works on whole-batch strided views, one per window tap, as in pool.py: tap t of
every window is x[:, rows, cols, :], a (C, OH, OW, N) view.

Shapes, batch last:
    x: (C, H, W, N) -> out: (C, OH, OW, N),  OH = (H - size_h) // stride_h + 1
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnncli.errors import quote
from cnncli.functional.pool import _covers, _disjoint, _taps


class StochPoolTrainCache(NamedTuple):
    x_shape: tuple[int, int, int, int]
    size: tuple[int, int]
    stride: tuple[int, int]
    index: np.ndarray  # (C, OH, OW, N) sampled tap of each window; T for an all-zero window


class StochPoolEvalCache(NamedTuple):
    x: np.ndarray  # (C, H, W, N) the input
    size: tuple[int, int]
    stride: tuple[int, int]
    out: np.ndarray  # (C, OH, OW, N) S2 / S1, 0 for an all-zero window
    s1: np.ndarray  # (C, OH, OW, N) S1 = sum of the window


def _check_non_negative(x: np.ndarray) -> None:
    if x.size and x.min() < 0:
        raise ValueError("stochastic pooling needs non-negative inputs (put it after a relu), "
                         f"received a minimum of {quote(float(x.min()))}")


def stochpool2d_forward_train(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, StochPoolTrainCache]:
    """x: (C, H, W, N) >= 0 -> out: (C, OH, OW, N), one tap sampled per window with p = a / S1.

    Inverse-CDF sampling, vectorised over all windows: with the running sums
    c_t = a_0 + ... + a_t (so c_{T-1} = S1) and one uniform u in [0, 1) per window, the sample
    is the first tap with c_t > u S1. Tap t wins for u in [c_{t-1} / S1, c_t / S1), an interval
    of length a_t / S1; a zero tap has an empty interval and is never picked.

    The threshold is u * S1' with S1' the float just below S1: u < 1 and rounding is monotone,
    so u * S1' rounds to at most S1' < S1 and some tap always wins. (u * S1 itself can round
    up to S1 when S1 is subnormal, and then no tap would win.) An all-zero window has
    threshold 0 and no c_t > 0: it outputs 0 and gets index T.

    Raises ValueError if x has a negative entry.
    """
    _check_non_negative(x)
    taps = [x[:, rows, cols, :] for _, (rows, cols) in _taps(x.shape, size, stride)]
    n_taps = len(taps)
    cums = [taps[0]]  # c_t: (C, OH, OW, N) each
    for v in taps[1:]:
        cums.append(cums[-1] + v)
    s1 = cums[-1]
    udtype = np.float32 if x.dtype == np.float32 else np.float64
    threshold = rng.random(s1.shape, dtype=udtype)
    threshold *= np.nextafter(s1, np.zeros(s1.shape[-1:], dtype=s1.dtype))  # u * S1'
    out = np.zeros(s1.shape, dtype=x.dtype)
    index = np.full(s1.shape, n_taps, dtype=np.int8 if n_taps < 128 else np.int32)
    above = np.empty(s1.shape, dtype=bool)
    # c_t > threshold holds from the sampled tap k on (the c_t never decrease), so
    # k = T - #{t : c_t > threshold}, and writing a_t where c_t > threshold from the last tap
    # down to the first leaves a_k, the last write.
    for t in range(n_taps - 1, -1, -1):
        np.greater(cums[t], threshold, out=above)
        np.copyto(out, taps[t], where=above)
        index -= above
    return out, StochPoolTrainCache(x.shape, size, stride, index)


def stochpool2d_backward_train(dout: np.ndarray, cache: StochPoolTrainCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N); each window's gradient goes to its sampled tap.

    An all-zero window (index T) routes nothing; where windows overlap, gradients add.
    """
    if not isinstance(cache, StochPoolTrainCache):
        raise ValueError("stochpool2d_backward_train needs a cache from stochpool2d_forward_train")
    disjoint = _disjoint(cache.size, cache.stride)
    covered = _covers(cache.x_shape, cache.size, cache.stride)
    dx = np.empty(cache.x_shape, dtype=dout.dtype) if covered else np.zeros(
        cache.x_shape, dtype=dout.dtype)
    hit = np.empty(dout.shape, dtype=bool)
    for t, (rows, cols) in _taps(cache.x_shape, cache.size, cache.stride):
        np.equal(cache.index, t, out=hit)
        if disjoint:
            np.multiply(dout, hit, out=dx[:, rows, cols, :])
        else:
            dx[:, rows, cols, :] += dout * hit
    return dx


def stochpool2d_forward_eval(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, StochPoolEvalCache]:
    """x: (C, H, W, N) >= 0 -> out: (C, OH, OW, N), the weighted average S2 / S1 of each window.

    sum_i p_i a_i = sum_i a_i^2 / S1 = S2 / S1, and 0 for an all-zero window (S1 = 0).
    Worked example: [[1, 2], [3, 4]] has S1 = 10, S2 = 30 and gives 3.0.

    Raises ValueError if x has a negative entry.
    """
    _check_non_negative(x)
    s1 = s2 = None
    for _, (rows, cols) in _taps(x.shape, size, stride):
        v = x[:, rows, cols, :]
        if s1 is None:
            s1, s2 = v.copy(), v * v
        else:
            s1 += v
            s2 += v * v
    out = np.zeros(s1.shape, dtype=x.dtype)
    np.divide(s2, s1, out=out, where=s1 > 0)
    return out, StochPoolEvalCache(x, size, stride, out, s1)


def stochpool2d_backward_eval(dout: np.ndarray, cache: StochPoolEvalCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N), the exact gradient of S2 / S1.

    For a tap a_j of a window with S1 > 0 (quotient rule, dS1/da_j = 1, dS2/da_j = 2 a_j):

        d/da_j [S2 / S1] = (2 a_j S1 - S2) / S1^2 = (2 a_j - out) / S1,  out = S2 / S1

    so dx_j = r (2 a_j - out) with r = dout / S1, per tap two operations on whole views.
    Overlapping windows add their contributions.

    An all-zero window gets gradient 0. S2 / S1 is continuous there (0 <= S2/S1 <= max a_i)
    but not differentiable: along a direction d >= 0 it grows like S2(d) / S1(d) (slope 1
    along a single tap), which is not linear in d. 0 is the convention, as relu takes one
    side at 0, and it matches training, where an all-zero window routes nothing.
    """
    if not isinstance(cache, StochPoolEvalCache):
        raise ValueError("stochpool2d_backward_eval needs a cache from stochpool2d_forward_eval")
    x, size, stride, out, s1 = cache
    disjoint = _disjoint(size, stride)
    covered = _covers(x.shape, size, stride)
    dx = np.empty(x.shape, dtype=dout.dtype) if covered else np.zeros(x.shape, dtype=dout.dtype)
    r2 = np.zeros(dout.shape, dtype=dout.dtype)  # dout / S1, 0 for an all-zero window
    np.divide(dout, s1, out=r2, where=s1 > 0)
    q = r2 * out  # dout out / S1
    r2 += r2  # 2 dout / S1
    for _, (rows, cols) in _taps(x.shape, size, stride):
        v = x[:, rows, cols, :]
        if disjoint:
            g = dx[:, rows, cols, :]
            np.multiply(v, r2, out=g)
            g -= q
        else:
            g = v * r2
            g -= q
            dx[:, rows, cols, :] += g
    return dx
