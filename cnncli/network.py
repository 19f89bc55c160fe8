"""A sequential network built by walking a YAML layer list (Caffe's net, Keras' Sequential).

    net = build_network((1, 28, 28), [{"type": "conv", "filters": 6, "kernel": 5}, ...], rng=rng)
    logits = net.forward(x)          # x: (C, H, W, N) -> (K, N)
    dx = net.backward(dlogits)       # fills every layer's grads

Shapes are inferred layer by layer at build time, so a misfit is reported before any data
moves, naming the layer index, its type and the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnncli.errors import ConfigError, quote
from cnncli.layers import Layer, layer_class

Shape = tuple[int, ...]


class Network:
    """An ordered list of built layers with named parameters `layers.<i>.<name>`."""

    def __init__(self, input_shape: Shape, layers: list[Layer]) -> None:
        self.input_shape = tuple(input_shape)
        self.layers = layers
        self.output_shape = layers[-1].output_shape if layers else self.input_shape

    def forward(
        self, x: np.ndarray, *, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """x: (C, H, W, N) -> output (K, N). `rng` drives dropout when training."""
        for layer in self.layers:
            x = layer.forward(x, training, rng)
        return x

    def backward(self, dout: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """dout: (K, N) -> dx: (C, H, W, N); each layer's grads are overwritten.

        Training needs no gradient with respect to the images: `input_grad=False` lets the
        first layer skip it (for a first conv layer, the largest col2im of the step) and
        returns None.
        """
        if not self.layers:
            return dout if input_grad else None
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        if input_grad:
            return self.layers[0].backward(dout)
        self.layers[0].backward_params(dout)
        return None

    def named_parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under dotted names, e.g. `layers.0.weight`."""
        return {
            f"layers.{i}.{name}": p
            for i, layer in enumerate(self.layers)
            for name, p in layer.params.items()
        }

    def named_gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward, under the same names as the parameters."""
        return {
            f"layers.{i}.{name}": layer.grads[name]
            for i, layer in enumerate(self.layers)
            for name in layer.params
        }

    def param_count(self) -> int:
        return sum(layer.param_count() for layer in self.layers)

    def get_config(self) -> dict[str, Any]:
        """{'input_shape': [C, H, W], 'layers': [spec, ...]}: enough to rebuild the model."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [layer.get_config() for layer in self.layers],
        }

    def summary_rows(self) -> list[tuple[str, str, Shape, int]]:
        """(index, type, output shape, parameter count) per layer, the input first."""
        rows: list[tuple[str, str, Shape, int]] = [("", "input", self.input_shape, 0)]
        for i, layer in enumerate(self.layers):
            rows.append((str(i), _describe(layer), layer.output_shape, layer.param_count()))
        return rows


def _describe(layer: Layer) -> str:
    """A short readable description, e.g. `conv 6@5x5 s1 same`."""
    cfg = layer.get_config()
    t = cfg["type"]
    if t == "conv":
        kh, kw = cfg["kernel"]
        pad = cfg["padding"] if isinstance(cfg["padding"], str) else f"pad{cfg['padding']}"
        return f"conv {cfg['filters']}@{kh}x{kw} s{_hw(cfg['stride'])} {pad}"
    if t in ("maxpool", "avgpool"):
        return f"{t} {_hw(cfg['size'])} s{_hw(cfg['stride'])}"
    if t == "dense":
        return f"dense {cfg['units']}"
    if t in ("dropout", "leaky_relu"):
        key = "rate" if t == "dropout" else "alpha"
        return f"{t} {cfg[key]:g}"
    return t


def _hw(v: Sequence[int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def format_summary(net: Network) -> str:
    """A Keras-like table: layer, output shape (batch axis omitted), parameters, and the total."""
    rows = [("#", "layer", "output shape", "params")]
    for idx, desc, shape, count in net.summary_rows():
        rows.append((idx, desc, "(" + ", ".join(map(str, shape)) + ")", f"{count:,}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    rule = "-" * (sum(widths) + 6)

    def fmt(r: tuple[str, ...]) -> str:
        return (f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                f"{r[3]:>{widths[3]}}").rstrip()

    lines = [fmt(rows[0]), rule, *(fmt(r) for r in rows[1:]), rule,
             f"total parameters: {net.param_count():,}"]
    return "\n".join(lines)


def check_input_shape(input_shape: Any) -> Shape:
    """[C, H, W] of positive ints -> (C, H, W); ConfigError quoting the value otherwise."""
    ok = (
        isinstance(input_shape, (list, tuple))
        and len(input_shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_shape)
    )
    if not ok:
        raise ConfigError(
            f"input_shape must be [channels, height, width] of positive integers, "
            f"received {quote(input_shape)}"
        )
    return (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))


def _layer_from_spec(i: int, spec: Any) -> Layer:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"layers[{i}]: must be a mapping with a 'type', received {quote(spec)}")
    if "type" not in spec:
        raise ConfigError(f"layers[{i}]: missing 'type' in {quote(dict(spec))}")
    type_name = spec["type"]
    try:
        cls = layer_class(type_name)
        return cls.from_config({k: v for k, v in spec.items() if k != "type"})
    except ConfigError as exc:
        raise type(exc)(f"layers[{i}] ({type_name}): {exc}") from None


def build_network(
    input_shape: Sequence[int],
    layer_specs: Sequence[Mapping[str, Any]],
    *,
    rng: np.random.Generator | None = None,
    dtype: np.dtype | type = np.float32,
) -> Network:
    """Validate every spec, infer shapes layer by layer, create parameters from `rng`.

    Errors name the layer: `layers[3] (conv): kernel must be a positive integer, received 0`.
    """
    shape: Shape = check_input_shape(input_shape)
    if not isinstance(layer_specs, Sequence) or isinstance(layer_specs, str) or not layer_specs:
        raise ConfigError(f"layers must be a non-empty list of layer specs, received "
                          f"{quote(layer_specs)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    dtype = np.dtype(dtype)
    _prime_allocator()
    layers = [_layer_from_spec(i, spec) for i, spec in enumerate(layer_specs)]
    for i, layer in enumerate(layers):
        try:
            shape = layer.build(shape, rng, dtype, he_default=_he_follows(layers, i))
        except ConfigError as exc:
            raise type(exc)(f"layers[{i}] ({layer.type_name}): {exc}") from None
    return Network(check_input_shape(input_shape), layers)


def _prime_allocator() -> None:
    """Make the C allocator keep big freed blocks for reuse (glibc; harmless elsewhere).

    glibc maps every block above a threshold (128 KB at start) straight from the system and
    unmaps it when freed, raising the threshold to a freed block's size only when such a
    block is freed, and it trims the heap whenever twice the threshold lies free at its top.
    A training step allocates and frees megabyte-sized arrays, so until one large block has
    been freed every step faults in megabytes of fresh pages: measured 325 page faults and
    +15% time per batch-64 LeNet step, 3,370 and +80% at batch 128. Allocating and freeing
    one untouched 24 MB block (two system calls, no memory used) raises both thresholds.
    """
    np.empty(24 << 20, dtype=np.uint8)


def _he_follows(layers: list[Layer], i: int) -> bool:
    """Whether the first activation after layer i (before any other weighted layer) is ReLU-like."""
    for layer in layers[i + 1:]:
        if layer.wants_he_init is not None:
            return layer.wants_he_init
        if layer.params or layer.type_name in ("conv", "dense"):
            return False
    return False
