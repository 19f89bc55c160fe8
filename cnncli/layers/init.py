"""Weight initialisers, registered by the name a layer's `init` gives. Randomness only from the
Generator passed in.

    he:     normal, std = sqrt(2 / fan_in)                    (ReLU family; He et al. 2015)
    glorot: uniform in +-sqrt(6 / (fan_in + fan_out))          (sigmoid/tanh; Glorot & Bengio 2010)
    pytorch: uniform in +-1 / sqrt(fan_in), the biases too      (PyTorch's default for Linear
                                                                and Conv2d)

Biases start at zero, except with `pytorch`.
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


@INITIALISERS.register("pytorch")
def pytorch(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
            dtype: np.dtype) -> np.ndarray:
    """Uniform in +-1 / sqrt(fan_in), drawn in float64 then cast to dtype: PyTorch's default for
    nn.Linear and nn.Conv2d weights (kaiming_uniform_ with a = sqrt(5)), a third of LeCun's
    variance. Its biases come from the same range (BIAS_INITIALISERS)."""
    limit = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, shape).astype(dtype)


#: bias initialisers of the initialisers that have one (drawn after the weight); others: zeros
BIAS_INITIALISERS: dict[str, Initialiser] = {"pytorch": pytorch}
