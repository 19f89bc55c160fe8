"""`dense` (units) and `flatten` layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.errors import ShapeError
from cnncli.functional.dense import dense_backward, dense_forward
from cnncli.layers.base import Layer, Shape
from cnncli.layers.init import INITS, init_weights
from cnncli.layers.registry import register
from cnncli.layers.validate import choice, positive_int


@register("flatten")
class Flatten(Layer):
    """(C, H, W, N) -> (C*H*W, N), in C-major order (the same order as PyTorch's flatten)."""

    def __init__(self) -> None:
        super().__init__()

    def infer_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        return x.reshape(-1, x.shape[-1])  # (C, H, W, N) -> (C*H*W, N): a view

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(*self.input_shape, dout.shape[-1])


@register("dense")
class Dense(Layer):
    """Fully connected: (D, N) -> (units, N); weight (units, D), bias (units,)."""

    def __init__(self, units: int, init: str | None = None) -> None:
        super().__init__()
        self.units = positive_int("units", units)
        self.init = None if init is None else choice("init", init, INITS)
        #: the initialiser build() used: `init`, or He/Glorot chosen by what follows the layer
        self.init_used: str | None = self.init
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "units": self.units, "init": self.init_used}

    def infer_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ShapeError(
                f"needs a flat input (D,), received shape {tuple(input_shape)}; "
                "add {type: flatten} before it"
            )
        return (self.units,)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype,
              he_default: bool = False) -> Shape:
        out = super().build(input_shape, rng, dtype, he_default)
        d = input_shape[0]
        kind = self.init_used = self.init or ("he" if he_default else "glorot")
        self.params = {
            "weight": init_weights(kind, (self.units, d), d, self.units, rng, dtype),
            "bias": np.zeros(self.units, dtype=dtype),
        }
        return out

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = dense_forward(x, self.params["weight"], self.params["bias"])
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, self.grads["weight"], self.grads["bias"] = dense_backward(dout, self._cache)
        return dx

    def backward_params(self, dout: np.ndarray) -> None:
        _, self.grads["weight"], self.grads["bias"] = dense_backward(
            dout, self._cache, input_grad=False)
