"""`maxpool` and `avgpool` layers: size (int or [h, w]), stride (default = size)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from cnncli.errors import ConfigError, ShapeError
from cnncli.functional.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    pool_output_size,
)
from cnncli.functional.stochpool import (
    StochPoolEvalCache,
    stochpool2d_backward_eval,
    stochpool2d_backward_train,
    stochpool2d_forward_eval,
    stochpool2d_forward_train,
)
from cnncli.layers.base import CheckCase, Layer, LayerSpec, Shape, register_layer
from cnncli.spec import Pair


class PoolSpec(LayerSpec):
    """Pooling over size windows moved by stride (overlapping windows allowed), no padding."""

    size: Pair = Field(2, description="window size: n or [height, width]")
    stride: Pair | None = Field(None, description="step between windows (default: the size)")

    @model_validator(mode="after")
    def _stride_defaults_to_size(self) -> PoolSpec:
        if self.stride is None:
            object.__setattr__(self, "stride", self.size)  # frozen model: set once, here
        return self

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"needs an image input (C, H, W), received shape "
                             f"{tuple(input_shape)}")
        c, h, w = input_shape
        (sh, sw), (th, tw) = self.size, self.stride  # type: ignore[misc]
        if sh > h or sw > w:
            raise ShapeError(
                f"window {sh}x{sw} is bigger than its input {h}x{w}, which would pool to zero "
                f"size (input shape {tuple(input_shape)})")
        return (c, pool_output_size(h, sh, th), pool_output_size(w, sw, tw))

    def describe(self) -> str:
        return f"{self.type} {_hw(self.size)} s{_hw(self.stride)}"  # type: ignore[arg-type]


def _hw(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


class _Pool(Layer):
    spec: PoolSpec
    output_sign = "same"
    _forward: Any
    _backward: Any

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = type(self)._forward(x, self.spec.size, self.spec.stride)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return type(self)._backward(dout, self._cache) if input_grad else None


class MaxPoolSpec(PoolSpec):
    """Max over each window."""

    type: Literal["maxpool"]


@register_layer
class MaxPool(_Pool):
    """Max over each window; backward routes the gradient to the first maximum."""

    Spec = MaxPoolSpec
    kinked = True
    _forward = staticmethod(maxpool2d_forward)
    _backward = staticmethod(maxpool2d_backward)
    check_cases = (
        CheckCase("maxpool 2x2, 6x6", {"size": 2}, (2, 6, 6), "distinct"),
        CheckCase("maxpool 2x2, odd 7x7", {"size": 2}, (2, 7, 7), "distinct"),
        CheckCase("maxpool 3x3/2 overlapping, 7x7", {"size": 3, "stride": 2}, (2, 7, 7),
                  "distinct"),
        CheckCase("maxpool [2,3] s[1,2]", {"size": [2, 3], "stride": [1, 2]}, (1, 5, 7),
                  "distinct"),
    )

    def kink_state(self) -> bytes:
        return np.ascontiguousarray(self._cache.argmax).tobytes()


class AvgPoolSpec(PoolSpec):
    """Mean over each window."""

    type: Literal["avgpool"]


@register_layer
class AvgPool(_Pool):
    """Mean over each window; backward spreads the gradient evenly."""

    Spec = AvgPoolSpec
    _forward = staticmethod(avgpool2d_forward)
    _backward = staticmethod(avgpool2d_backward)
    check_cases = (
        CheckCase("avgpool 2x2, 6x6", {"size": 2}, (2, 6, 6)),
        CheckCase("avgpool 3x3/2 overlapping, 7x7", {"size": 3, "stride": 2}, (2, 7, 7)),
    )


class StochPoolSpec(PoolSpec):
    """Stochastic pooling (Zeiler & Fergus 2013): while training, one activation per window
    picked at random with probability proportional to its value; at evaluation, the
    probability-weighted average sum(a^2) / sum(a). Its input must not be negative: the
    layer before it (past pooling, dropout and flatten) must be relu or sigmoid."""

    type: Literal["stochpool"]

    def check_inputs(self, before: Sequence[LayerSpec], sign_of: Any) -> None:
        for spec in reversed(before):
            sign = sign_of(spec)
            if sign == "same":
                continue
            if sign == "non-negative":
                return
            raise ShapeError(f"needs non-negative inputs (a probability per activation), but "
                             f"{spec.type} before it can output negative values; put a relu "
                             "before it")
        raise ShapeError("needs non-negative inputs, but it would see the normalised images "
                         "(negative values); put a conv and a relu before it")


@register_layer
class StochPool(_Pool):
    """Training: the sampled activation per window (from the run's generator), its gradient
    routed to that position only. Evaluation: sum(a^2) / sum(a) with its exact gradient.
    An all-zero window gives 0 and no gradient. Negative inputs are an error (and ruled out
    when the network is built: see StochPoolSpec)."""

    Spec = StochPoolSpec
    kinked = True
    check_cases = (
        CheckCase("stochpool 2x2 (evaluation)", {"size": 2}, (2, 6, 6), "positive",
                  training=False),
        CheckCase("stochpool 3x3/2 overlapping (evaluation)", {"size": 3, "stride": 2},
                  (2, 7, 7), "positive", training=False),
    )

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        if training:
            if rng is None:
                raise ConfigError("stochpool needs a random generator when training")
            out, self._cache = stochpool2d_forward_train(x, self.spec.size, self.spec.stride,
                                                         rng)
        else:
            out, self._cache = stochpool2d_forward_eval(x, self.spec.size, self.spec.stride)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        if isinstance(self._cache, StochPoolEvalCache):
            return stochpool2d_backward_eval(dout, self._cache)
        return stochpool2d_backward_train(dout, self._cache)

    def kink_state(self) -> bytes:
        """Training: the sampled taps. Evaluation: which windows are all zero (the only
        places the weighted average is not differentiable)."""
        if isinstance(self._cache, StochPoolEvalCache):
            return np.ascontiguousarray(self._cache.inv_s1 == 0).tobytes()
        return np.ascontiguousarray(self._cache.index).tobytes()
