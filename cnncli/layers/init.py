"""Weight initialisers, registered by the name a layer's `init` gives. Randomness only from the
Generator passed in.

    he:     normal, std = sqrt(2 / fan_in)                    (ReLU family; He et al. 2015)
    glorot: uniform in +-sqrt(6 / (fan_in + fan_out))          (sigmoid/tanh; Glorot & Bengio 2010)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnncli.registry import Registry

Initialiser = Callable[[tuple[int, ...], int, int, np.random.Generator, np.dtype], np.ndarray]
INITIALISERS: Registry[Initialiser] = Registry("initialiser")


@INITIALISERS.register("he")
def he(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
       dtype: np.dtype) -> np.ndarray:
    """Normal with std sqrt(2 / fan_in), drawn in float64 then cast to dtype."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


@INITIALISERS.register("glorot")
def glorot(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
           dtype: np.dtype) -> np.ndarray:
    """Uniform in +-sqrt(6 / (fan_in + fan_out)), drawn in float64 then cast to dtype."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)
