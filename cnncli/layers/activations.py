"""Activations (`relu`, `leaky_relu`, `sigmoid`, `tanh`) and `dropout`: any shape in, same out."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from cnncli.errors import ConfigError
from cnncli.functional import activations as F
from cnncli.layers.base import CheckCase, Layer, LayerSpec, register_layer
from cnncli.spec import Real


class _Activation(Layer):
    """Elementwise f(z) whose backward needs only the cache of its forward."""

    _forward: Any = staticmethod(F.relu_forward)
    _backward: Any = staticmethod(F.relu_backward)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = type(self)._forward(x, *self.args())
        return out

    def args(self) -> tuple[Any, ...]:
        return ()

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return type(self)._backward(dout, self._cache) if input_grad else None


class ReluSpec(LayerSpec):
    """max(z, 0)."""

    type: Literal["relu"]


@register_layer
class ReLU(_Activation):
    """max(z, 0); gradient passes where z >= 0."""

    Spec = ReluSpec
    output_sign = "non-negative"
    prefers_he_init = True
    kinked = True
    check_cases = (CheckCase("relu", {}, (3, 4, 5), "away"),)

    def kink_state(self) -> bytes:
        return np.ascontiguousarray(self._cache).tobytes()


class LeakyReluSpec(LayerSpec):
    """z where z >= 0, else alpha z."""

    type: Literal["leaky_relu"]
    alpha: Real = Field(0.01, ge=0, description="slope for z < 0")

    def describe(self) -> str:
        return f"leaky_relu {self.alpha:g}"


@register_layer
class LeakyReLU(_Activation):
    """z where z >= 0 else alpha z."""

    Spec = LeakyReluSpec
    spec: LeakyReluSpec
    prefers_he_init = True
    kinked = True
    _forward = staticmethod(F.leaky_relu_forward)
    _backward = staticmethod(F.leaky_relu_backward)
    check_cases = (CheckCase("leaky_relu 0.1", {"alpha": 0.1}, (3, 4, 5), "away"),)

    def args(self) -> tuple[Any, ...]:
        return (self.spec.alpha,)

    def kink_state(self) -> bytes:
        return np.ascontiguousarray(self._cache).tobytes()


class SigmoidSpec(LayerSpec):
    """1 / (1 + e^-z)."""

    type: Literal["sigmoid"]


@register_layer
class Sigmoid(_Activation):
    """1 / (1 + e^-z); gradient s (1 - s)."""

    Spec = SigmoidSpec
    output_sign = "non-negative"
    prefers_he_init = False
    _forward = staticmethod(F.sigmoid_forward)
    _backward = staticmethod(F.sigmoid_backward)
    check_cases = (CheckCase("sigmoid", {}, (3, 4, 5)),)


class TanhSpec(LayerSpec):
    """tanh(z)."""

    type: Literal["tanh"]


@register_layer
class Tanh(_Activation):
    """tanh(z); gradient 1 - t^2."""

    Spec = TanhSpec
    prefers_he_init = False
    _forward = staticmethod(F.tanh_forward)
    _backward = staticmethod(F.tanh_backward)
    check_cases = (CheckCase("tanh", {}, (11,)),)


class DropoutSpec(LayerSpec):
    """Inverted dropout while training; the identity at evaluation."""

    type: Literal["dropout"]
    rate: Real = Field(0.5, ge=0, lt=1, description="fraction of units zeroed while training")

    def describe(self) -> str:
        return f"dropout {self.rate:g}"


@register_layer
class Dropout(Layer):
    """Inverted dropout with the given rate while training; the identity at evaluation."""

    Spec = DropoutSpec
    spec: DropoutSpec
    output_sign = "same"
    check_cases = (CheckCase("dropout 0.3 (training)", {"rate": 0.3}, (3, 4, 5)),)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        if not training or self.spec.rate == 0.0:
            self._cache = None
            return x
        if rng is None:
            raise ConfigError("dropout needs a random generator when training")
        out, self._cache = F.dropout_forward(x, self.spec.rate, rng)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        return dout if self._cache is None else F.dropout_backward(dout, self._cache)
