"""`maxpool` and `avgpool` layers: size (int or [h, w]), stride (default = size)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.errors import ShapeError
from cnncli.functional.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    pool_output_size,
)
from cnncli.layers.base import Layer, Shape
from cnncli.layers.registry import register
from cnncli.layers.validate import pair


class _Pool(Layer):
    _forward = staticmethod(maxpool2d_forward)
    _backward = staticmethod(maxpool2d_backward)

    def __init__(self, size: int | list[int] = 2, stride: int | list[int] | None = None) -> None:
        super().__init__()
        self.size = pair("size", size)
        self.stride = self.size if stride is None else pair("stride", stride)
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "size": list(self.size), "stride": list(self.stride)}

    def infer_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(
                f"needs an image input (C, H, W), received shape {tuple(input_shape)}"
            )
        c, h, w = input_shape
        if self.size[0] > h or self.size[1] > w:
            raise ShapeError(
                f"window {self.size[0]}x{self.size[1]} is bigger than its input {h}x{w}, "
                f"which would pool to zero size (input shape {tuple(input_shape)})"
            )
        oh = pool_output_size(h, self.size[0], self.stride[0])
        ow = pool_output_size(w, self.size[1], self.stride[1])
        return (c, oh, ow)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = self._forward(x, self.size, self.stride)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._backward(dout, self._cache)


@register("maxpool")
class MaxPool(_Pool):
    """Max over each window; backward routes the gradient to the first maximum."""


@register("avgpool")
class AvgPool(_Pool):
    """Mean over each window; backward spreads the gradient evenly."""

    _forward = staticmethod(avgpool2d_forward)
    _backward = staticmethod(avgpool2d_backward)
