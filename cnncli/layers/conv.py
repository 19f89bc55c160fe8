"""`conv` layer: filters, kernel (int or [kh, kw]), stride, padding (int, [h, w], valid or same)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.errors import ConfigError, ShapeError, quote
from cnncli.functional.conv import Pad, conv2d_backward, conv2d_forward, conv_output_size
from cnncli.layers.base import Layer, Shape
from cnncli.layers.init import INITS, init_weights
from cnncli.layers.registry import register
from cnncli.layers.validate import choice, pair, positive_int


def resolve_padding(padding: Any, kernel: tuple[int, int], stride: tuple[int, int],
                    hw: tuple[int, int]) -> Pad:
    """padding spec -> (top, bottom, left, right).

    `valid` is 0; `same` pads so that OH = ceil(H / stride) (TensorFlow's rule; the extra
    pixel of an even total goes to the bottom/right); an int or [h, w] pads both sides.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for k, s, n in zip(kernel, stride, hw, strict=True):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            out += [total // 2, total - total // 2]
        return (out[0], out[1], out[2], out[3])
    ph, pw = padding
    return (ph, ph, pw, pw)


@register("conv")
class Conv(Layer):
    """2-D convolution over (C, H, W, N) batches; weight (F, C, KH, KW), bias (F,)."""

    def __init__(
        self,
        filters: int,
        kernel: int | list[int],
        stride: int | list[int] = 1,
        padding: int | list[int] | str = "valid",
        init: str | None = None,
    ) -> None:
        super().__init__()
        self.filters = positive_int("filters", filters)
        self.kernel = pair("kernel", kernel)
        self.stride = pair("stride", stride)
        if isinstance(padding, str):
            self.padding: str | tuple[int, int] = choice("padding", padding, ("valid", "same"))
        elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            self.padding = (padding, padding)
        elif (isinstance(padding, (list, tuple)) and len(padding) == 2
              and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                      for p in padding)):
            self.padding = (int(padding[0]), int(padding[1]))
        else:
            raise ConfigError(
                "padding must be 'valid', 'same', a non-negative integer or a [height, width] "
                f"pair, received {quote(padding)}"
            )
        self.init = None if init is None else choice("init", init, INITS)
        #: the initialiser build() used: `init`, or He/Glorot chosen by what follows the layer
        self.init_used: str | None = self.init
        self.pad: Pad = (0, 0, 0, 0)
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {
            "type": self.type_name,
            "filters": self.filters,
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": padding,
            "init": self.init_used,
        }

    def infer_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(
                f"needs an image input (C, H, W), received shape {tuple(input_shape)}"
            )
        c, h, w = input_shape
        self.pad = resolve_padding(self.padding, self.kernel, self.stride, (h, w))
        top, bottom, left, right = self.pad
        kh, kw = self.kernel
        if kh > h + top + bottom or kw > w + left + right:
            raise ShapeError(
                f"kernel {kh}x{kw} is bigger than its padded input "
                f"{h + top + bottom}x{w + left + right} (input shape {tuple(input_shape)})"
            )
        oh = conv_output_size(h, kh, self.stride[0], top + bottom)
        ow = conv_output_size(w, kw, self.stride[1], left + right)
        return (self.filters, oh, ow)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype,
              he_default: bool = False) -> Shape:
        out = super().build(input_shape, rng, dtype, he_default)
        c = input_shape[0]
        kh, kw = self.kernel
        kind = self.init_used = self.init or ("he" if he_default else "glorot")
        shape = (self.filters, c, kh, kw)
        self.params = {
            "weight": init_weights(kind, shape, c * kh * kw, self.filters * kh * kw, rng, dtype),
            "bias": np.zeros(self.filters, dtype=dtype),
        }
        return out

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = conv2d_forward(
            x, self.params["weight"], self.params["bias"], self.stride, self.pad
        )
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, self.grads["weight"], self.grads["bias"] = conv2d_backward(dout, self._cache)
        return dx

    def backward_params(self, dout: np.ndarray) -> None:
        _, self.grads["weight"], self.grads["bias"] = conv2d_backward(
            dout, self._cache, input_grad=False)
