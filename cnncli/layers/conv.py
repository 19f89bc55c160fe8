"""`conv` layer: filters, kernel (int or [kh, kw]), stride, padding (int, [h, w], valid or same)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cnncli.errors import ShapeError
from cnncli.functional.conv import Pad, conv2d_backward, conv2d_forward, conv_output_size
from cnncli.layers.base import CheckCase, InitName, LayerSpec, Shape, WeightedLayer, register_layer
from cnncli.spec import NonNegativeInt, Pair, PositiveInt, one_of, pair_of

Padding = one_of(Literal["valid", "same"] | pair_of(NonNegativeInt, "an integer >= 0"),
                 "'valid', 'same', an integer >= 0 or a [height, width] pair of them")


def resolve_padding(padding: str | tuple[int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], hw: tuple[int, int]) -> Pad:
    """padding spec -> (top, bottom, left, right).

    `valid` is 0; `same` pads so that OH = ceil(H / stride) (TensorFlow's rule; the extra
    pixel of an even total goes to the bottom/right); [h, w] pads both sides.
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


class ConvSpec(LayerSpec):
    """2-D convolution: `filters` kernels of size `kernel`, moved by `stride`, over the input
    zero-padded by `padding`."""

    type: Literal["conv"]
    filters: PositiveInt = Field(description="number of output channels (kernels)")
    kernel: Pair = Field(description="kernel size: n or [height, width]")
    stride: Pair = Field(1, description="step between windows: n or [height, width]")
    padding: Padding = Field(
        "valid", description="valid (none), same (output = ceil(input / stride)), n or "
        "[height, width] zeros on each side")
    init: InitName | None = Field(
        None, description="he, glorot or pytorch; by default He before a ReLU-family activation, "
        "Glorot otherwise")

    def pads(self, hw: tuple[int, int]) -> Pad:
        """(top, bottom, left, right) zeros for an input of height and width hw."""
        return resolve_padding(self.padding, self.kernel, self.stride, hw)  # type: ignore[arg-type]

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(
                f"needs an image input (C, H, W), received shape {tuple(input_shape)}")
        c, h, w = input_shape
        top, bottom, left, right = self.pads((h, w))
        kh, kw = self.kernel
        if kh > h + top + bottom or kw > w + left + right:
            raise ShapeError(
                f"kernel {kh}x{kw} is bigger than its padded input "
                f"{h + top + bottom}x{w + left + right} (input shape {tuple(input_shape)})")
        oh = conv_output_size(h, kh, self.stride[0], top + bottom)
        ow = conv_output_size(w, kw, self.stride[1], left + right)
        return (self.filters, oh, ow)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        kh, kw = self.kernel
        return {"weight": (self.filters, input_shape[0], kh, kw), "bias": (self.filters,)}

    def describe(self) -> str:
        kh, kw = self.kernel
        pad = self.padding if isinstance(self.padding, str) else f"pad{list(self.padding)}"
        return f"conv {self.filters}@{kh}x{kw} s{_hw(self.stride)} {pad}"


def _hw(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


@register_layer
class Conv(WeightedLayer):
    """2-D convolution over (C, H, W, N) batches; weight (F, C, KH, KW), bias (F,)."""

    Spec = ConvSpec
    spec: ConvSpec
    _forward = staticmethod(conv2d_forward)
    _backward = staticmethod(conv2d_backward)
    check_cases = (
        CheckCase("conv 1->2 3x3 s1 valid", {"filters": 2, "kernel": 3}, (1, 5, 5)),
        CheckCase("conv 3->4 3x3 s1 same (RGB)", {"filters": 4, "kernel": 3, "padding": "same"},
                  (3, 6, 6)),
        CheckCase("conv 2->3 5x5 s2 pad 2, odd 7x9",
                  {"filters": 3, "kernel": 5, "stride": 2, "padding": 2}, (2, 7, 9)),
        CheckCase("conv 2->2 4x4 s2 same (even kernel)",
                  {"filters": 2, "kernel": 4, "stride": 2, "padding": "same"}, (2, 7, 7)),
        CheckCase("conv 3->2 [3,2] s[2,1] pad [1,0]",
                  {"filters": 2, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]},
                  (3, 6, 5)),
    )

    @property
    def pad(self) -> Pad:
        """(top, bottom, left, right) zeros for the built input shape."""
        return self.spec.pads(self.input_shape[1:3])  # type: ignore[arg-type]

    def fans(self) -> tuple[int, int]:
        kh, kw = self.spec.kernel
        return self.input_shape[0] * kh * kw, self.spec.filters * kh * kw

    def args(self) -> tuple[Any, ...]:
        return (self.spec.stride, self.pad)
