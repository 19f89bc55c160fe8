"""`batchnorm` layer: per channel after conv (C, H, W), per feature after dense (D,)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from cnncli.functional.batchnorm import batchnorm_backward, batchnorm_forward
from cnncli.layers.base import CheckCase, Layer, LayerSpec, Shape, register_layer
from cnncli.spec import Real


class BatchNormSpec(LayerSpec):
    """Batch normalisation: each channel (or feature) normalised by the batch's mean and
    variance while training, by running averages of them at evaluation, then scaled and
    shifted by learned weight (gamma) and bias (beta)."""

    type: Literal["batchnorm"]
    momentum: Real = Field(0.1, gt=0, le=1, description="weight of the new batch in the "
                           "running averages (PyTorch's convention; Keras' 0.99 is 0.01 here)")
    eps: Real = Field(1e-5, gt=0, description="added to the variance before its square root")

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"weight": (input_shape[0],), "bias": (input_shape[0],)}

    def buffer_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"running_mean": (input_shape[0],), "running_var": (input_shape[0],)}


@register_layer
class BatchNorm(Layer):
    """weight (gamma) and bias (beta) are trained; running_mean and running_var are buffers:
    saved in checkpoints, updated by training forwards, never touched by the optimizer."""

    Spec = BatchNormSpec
    spec: BatchNormSpec
    check_cases = (
        CheckCase("batchnorm (C,H,W) training", {}, (3, 4, 5)),
        CheckCase("batchnorm (D,) training, batch 6", {"momentum": 0.3}, (7,), batch=6),
    )

    def create_params(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        c = self.input_shape[0]
        self.params = {"weight": np.ones(c, dtype=dtype), "bias": np.zeros(c, dtype=dtype)}
        self.buffers = {"running_mean": np.zeros(c, dtype=dtype),
                        "running_var": np.ones(c, dtype=dtype)}

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache, mean, var = batchnorm_forward(
            x, self.params["weight"], self.params["bias"], self.buffers["running_mean"],
            self.buffers["running_var"], training=training, momentum=self.spec.momentum,
            eps=self.spec.eps)
        if training:  # in place: the arrays a checkpoint and the network hold stay the same
            self.buffers["running_mean"][...] = mean
            self.buffers["running_var"][...] = var
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, self.grads["weight"], self.grads["bias"] = batchnorm_backward(dout, self._cache)
        return dx if input_grad else None
