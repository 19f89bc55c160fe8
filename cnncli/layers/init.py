"""Weight initialisers. Randomness only from the Generator passed in.

    he:     normal, std = sqrt(2 / fan_in)                    (ReLU family; He et al. 2015)
    glorot: uniform in +-sqrt(6 / (fan_in + fan_out))          (sigmoid/tanh; Glorot & Bengio 2010)
"""

from __future__ import annotations

import numpy as np

INITS = ("he", "glorot")


def init_weights(
    kind: str,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: np.dtype,
) -> np.ndarray:
    """A new weight array of `shape` drawn by the named scheme, in `dtype`."""
    if kind == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif kind == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, shape)
    else:  # validated at config time; kept as a guard for direct callers
        raise ValueError(f"unknown initialiser {kind!r} (known: {', '.join(INITS)})")
    return w.astype(dtype)
