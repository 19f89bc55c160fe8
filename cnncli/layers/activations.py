"""Activations (`relu`, `leaky_relu`, `sigmoid`, `tanh`) and `dropout`: any shape in, same out."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.errors import ConfigError
from cnncli.functional import activations as F
from cnncli.layers.base import Layer
from cnncli.layers.registry import register
from cnncli.layers.validate import fraction, non_negative_number


class _Activation(Layer):
    _forward = staticmethod(F.relu_forward)
    _backward = staticmethod(F.relu_backward)

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = self._forward(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._backward(dout, self._cache)


@register("relu")
class ReLU(_Activation):
    """max(z, 0); gradient passes where z >= 0."""

    wants_he_init = True


@register("sigmoid")
class Sigmoid(_Activation):
    """1 / (1 + e^-z); gradient s (1 - s)."""

    wants_he_init = False
    _forward = staticmethod(F.sigmoid_forward)
    _backward = staticmethod(F.sigmoid_backward)


@register("tanh")
class Tanh(_Activation):
    """tanh(z); gradient 1 - t^2."""

    wants_he_init = False
    _forward = staticmethod(F.tanh_forward)
    _backward = staticmethod(F.tanh_backward)


@register("leaky_relu")
class LeakyReLU(_Activation):
    """z where z >= 0 else alpha z."""

    wants_he_init = True

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = non_negative_number("alpha", alpha)

    def get_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "alpha": self.alpha}

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = F.leaky_relu_forward(x, self.alpha)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return F.leaky_relu_backward(dout, self._cache)


@register("dropout")
class Dropout(Layer):
    """Inverted dropout with the given rate while training; the identity at evaluation."""

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        self.rate = fraction("rate", rate)
        self._mask: np.ndarray | None = None

    def get_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "rate": self.rate}

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if rng is None:
            raise ConfigError("dropout needs a random generator when training")
        out, self._mask = F.dropout_forward(x, self.rate, rng)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._mask is None else F.dropout_backward(dout, self._mask)
