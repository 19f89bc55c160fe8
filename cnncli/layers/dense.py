"""`dense` (units) and `flatten` layers."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from cnncli.errors import ShapeError
from cnncli.functional.dense import dense_backward, dense_forward
from cnncli.layers.base import (
    CheckCase,
    InitName,
    Layer,
    LayerSpec,
    Shape,
    WeightedLayer,
    register_layer,
)
from cnncli.spec import PositiveInt


class FlattenSpec(LayerSpec):
    """(C, H, W) -> (C*H*W,)."""

    type: Literal["flatten"]

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)


@register_layer
class Flatten(Layer):
    """(C, H, W, N) -> (C*H*W, N), in C-major order (the same order as PyTorch's flatten)."""

    Spec = FlattenSpec
    output_sign = "same"
    check_cases = (CheckCase("flatten 3x4x5", {}, (3, 4, 5)),)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        return x.reshape(-1, x.shape[-1])  # (C, H, W, N) -> (C*H*W, N): a view

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dout.reshape(*self.input_shape, dout.shape[-1]) if input_grad else None


class DenseSpec(LayerSpec):
    """Fully connected: every output unit sees every input value."""

    type: Literal["dense"]
    units: PositiveInt = Field(description="number of output units")
    init: InitName | None = Field(
        None, description="he, glorot or pytorch; by default He before a ReLU-family activation, "
        "Glorot otherwise")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ShapeError(f"needs a flat input (D,), received shape {tuple(input_shape)}; "
                             "add {type: flatten} before it")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"weight": (self.units, input_shape[0]), "bias": (self.units,)}

    def describe(self) -> str:
        return f"dense {self.units}"


@register_layer
class Dense(WeightedLayer):
    """(D, N) -> (units, N); weight (units, D), bias (units,)."""

    Spec = DenseSpec
    spec: DenseSpec
    _forward = staticmethod(dense_forward)
    _backward = staticmethod(dense_backward)
    check_cases = (CheckCase("dense 7->5", {"units": 5}, (7,)),)

    def fans(self) -> tuple[int, int]:
        return self.input_shape[0], self.spec.units

    def args(self) -> tuple[Any, ...]:
        return ()
