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
Evaluation draws nothing.

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
    inv_s1: np.ndarray  # (C, OH, OW, N) 1 / S1, 0 for an all-zero window


def _check_non_negative(x: np.ndarray) -> None:
    if x.size and x.min() < 0:
        raise ValueError("stochastic pooling needs non-negative inputs (put it after a relu), "
                         f"received a minimum of {quote(float(x.min()))}")


def stochpool2d_forward_train(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, StochPoolTrainCache]:
    """x: (C, H, W, N) >= 0 -> out: (C, OH, OW, N), one tap sampled per window with p = a / S1.

    Inverse-CDF sampling, vectorised over all windows: with the running sums
    c_t = a_0 + ... + a_t (so c_{T-1} = S1), one u in [0, 1) per window from rng.random and
    the threshold h = S1 - u S1, the sample k is the first tap with c_t >= h, i.e. the number
    of taps with c_t < h. Tap t wins for (1 - u) in (c_{t-1} / S1, c_t / S1], an interval of
    length a_t / S1; a zero tap has an empty interval and is never picked.

    h is at most S1 (u S1 >= 0), so some tap always wins. It is then raised to at least the
    smallest subnormal number s: S1 - u S1 is 0 when u S1 rounds up to S1, which happens
    for subnormal S1, and a threshold of 0 would pick a leading zero tap. An all-zero window
    has every c_t = 0 < s: it outputs 0 and gets index T.

    Raises ValueError if x has a negative entry.
    """
    _check_non_negative(x)
    taps = [x[:, rows, cols, :] for _, (rows, cols) in _taps(x.shape, size, stride)]
    n_taps = len(taps)
    cums = [taps[0]]  # c_t: (C, OH, OW, N) each
    for v in taps[1:]:
        cums.append(cums[-1] + v)
    s1 = cums[-1]
    threshold = rng.random(s1.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
    threshold *= s1
    np.subtract(s1, threshold, out=threshold)  # h = S1 - u S1
    # ufuncs against a broadcast row are vectorised, against a scalar not
    smallest = np.full(s1.shape[-1:], np.finfo(x.dtype).smallest_subnormal, threshold.dtype)
    np.maximum(threshold, smallest, out=threshold)
    index = np.zeros(s1.shape, dtype=np.int8 if n_taps < 128 else np.int32)
    below = np.empty(s1.shape, dtype=bool)
    for c in cums:
        np.less(c, threshold, out=below)
        index += below  # bool counts as 0/1
    out = taps[0] * (index == 0)
    for t in range(1, n_taps):
        out += taps[t] * (index == t)  # index T (all-zero window) matches no tap: 0
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

    Worked example: [[1, 2], [3, 4]] has S1 = 10, S2 = 30 and gives 3.0. Computed as
    sum_i a_i (a_i / S1) = sum_i p_i a_i rather than S2 / S1: a_i^2 underflows for activations
    below 1e-19 in float32, the probabilities a_i / S1 in [0, 1] do not.

    A window with S1 below the smallest normal number (all zero, or within 1.2e-38 of it in
    float32) counts as all-zero: out 0, gradient 0. 1 / S1 is set to 0 there (dividing by
    1 + S1 instead), which keeps every pass a plain vectorised one.

    Raises ValueError if x has a negative entry.
    """
    _check_non_negative(x)
    taps = [x[:, rows, cols, :] for _, (rows, cols) in _taps(x.shape, size, stride)]
    s1 = taps[0].copy()
    for v in taps[1:]:
        s1 += v
    flat = s1 < np.finfo(x.dtype).tiny  # all-zero window
    inv_s1 = ~flat / (s1 + flat)  # 1 / S1, 0 for an all-zero window; at most 1 / tiny, finite
    out = np.zeros(s1.shape, dtype=x.dtype)
    for v in taps:
        p = v * inv_s1
        p *= v
        out += p
    return out, StochPoolEvalCache(x, size, stride, out, inv_s1)


def stochpool2d_backward_eval(dout: np.ndarray, cache: StochPoolEvalCache) -> np.ndarray:
    """dout: (C, OH, OW, N) -> dx: (C, H, W, N), the exact gradient of S2 / S1.

    For a tap a_j of a window with S1 > 0 (quotient rule, dS1/da_j = 1, dS2/da_j = 2 a_j):

        d/da_j [S2 / S1] = (2 a_j S1 - S2) / S1^2 = (2 a_j - out) / S1,  out = S2 / S1

    computed per tap as (a_j (2 / S1) - out / S1) dout: the bracket lies in [-1, 2] (as
    0 <= out <= max a_i <= S1), so nothing overflows however small S1 is. Overlapping
    windows add their contributions.

    An all-zero window gets gradient 0 (2 / S1 and out / S1 are set to 0 there). S2 / S1 is
    continuous at 0 (0 <= S2/S1 <= max a_i) but not differentiable: along a direction d >= 0
    it grows like S2(d) / S1(d), slope 1 along a single tap, which is not linear in d. 0 is
    the convention, as relu takes one side at 0, and it matches training, where an all-zero
    window routes nothing.
    """
    if not isinstance(cache, StochPoolEvalCache):
        raise ValueError("stochpool2d_backward_eval needs a cache from stochpool2d_forward_eval")
    x, size, stride, out, inv_s1 = cache
    disjoint = _disjoint(size, stride)
    covered = _covers(x.shape, size, stride)
    dx = np.empty(x.shape, dtype=dout.dtype) if covered else np.zeros(x.shape, dtype=dout.dtype)
    q = out * inv_s1  # out / S1
    two_inv = inv_s1 + inv_s1  # 2 / S1
    g = np.empty(dout.shape, dtype=dout.dtype)  # contiguous: one strided pass per tap, not 3
    for _, (rows, cols) in _taps(x.shape, size, stride):
        np.multiply(x[:, rows, cols, :], two_inv, out=g)
        g -= q
        if disjoint:
            np.multiply(g, dout, out=dx[:, rows, cols, :])
        else:
            g *= dout
            dx[:, rows, cols, :] += g
    return dx
