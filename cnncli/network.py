"""A sequential network built by walking a layer list (Caffe's net, Keras' Sequential).

    shapes = infer_shapes((1, 28, 28), specs)           # shapes only, no weights
    net = build_model((1, 28, 28), specs, rng=rng)      # the one build of a command
    logits = net.forward(x)                             # x: (C, H, W, N) -> (K, N)
    dx = net.backward(dlogits)                          # fills every layer's grads
    net.load_parameters(checkpoint.weights)             # checked names, shapes and dtypes

Shapes are inferred on the specs, so a misfit is reported before any weight exists, naming the
layer index, its type and the shapes. `specs` are LayerSpec objects (validated), or plain
mappings that are validated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnncli.errors import CheckpointError, ConfigError
from cnncli.layers import LAYERS, Layer, LayerSpec, layer_for, parse_layer_spec
from cnncli.sharedmem import shared_views

Shape = tuple[int, ...]
#: a network with more parameters than this is refused as a config error
MAX_PARAMETERS = 2**31 - 1


def as_specs(specs: Sequence[LayerSpec | Mapping[str, Any]]) -> list[LayerSpec]:
    """LayerSpecs as they are; plain mappings validated (errors located at ('layers', i))."""
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence) or not specs:
        raise ConfigError(f"must be a non-empty list of layer specs, received {specs!r:.60}",
                          loc=("layers",))
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, LayerSpec):
            out.append(spec)
            continue
        try:
            out.append(parse_layer_spec(spec))
        except ConfigError as exc:
            raise exc.located(("layers", i)) from None
    return out


def default_init(specs: Sequence[LayerSpec], i: int) -> str:
    """The initialiser layer i gets when its spec names none: He when the first activation
    after it (before any other weighted layer) is ReLU-like, Glorot otherwise."""
    for spec in specs[i + 1:]:
        prefers = LAYERS.get(spec.type).prefers_he_init
        if prefers is not None:
            return "he" if prefers else "glorot"
        if "init" in type(spec).model_fields:
            break
    return "glorot"


def resolve_specs(specs: Sequence[LayerSpec | Mapping[str, Any]]) -> list[LayerSpec]:
    """Specs with every default decided: an unset `init` becomes the one default_init picks."""
    out = as_specs(specs)
    return [s.model_copy(update={"init": default_init(out, i)})
            if "init" in type(s).model_fields and s.init is None else s
            for i, s in enumerate(out)]


def infer_shapes(input_shape: Sequence[int], specs: Sequence[LayerSpec | Mapping[str, Any]]
                 ) -> list[Shape]:
    """The output shape of every layer (no batch axis), from the specs alone.

    ConfigError (ShapeError) located at ('layers', i) with the layer's type as its kind when a
    layer does not fit its input, or when the network would be absurdly large.
    """
    shape: Shape = tuple(int(v) for v in input_shape)
    shapes, params = [], 0
    specs = as_specs(specs)
    for i, spec in enumerate(specs):
        try:
            spec.check_inputs(specs[:i], _sign_of)
            params += spec.param_count(shape)
            shape = spec.output_shape(shape)
        except ConfigError as exc:
            raise exc.located(("layers", i), kind=spec.type) from None
        if params > MAX_PARAMETERS or int(np.prod(shape, dtype=object)) > MAX_PARAMETERS:
            raise ConfigError(f"the network grows to {params:,} parameters and outputs of "
                              f"{int(np.prod(shape, dtype=object)):,} values per image here; "
                              f"at most {MAX_PARAMETERS:,} are supported",
                              loc=("layers", i), kind=spec.type)
        shapes.append(shape)
    return shapes


def _sign_of(spec: LayerSpec) -> str:
    return LAYERS.get(spec.type).output_sign


#: (first, second) layer types that give the same output in either order, run second-first:
#: max(relu(a), relu(b)) = relu(max(a, b)) exactly (both are monotone and do no arithmetic)
COMMUTING = frozenset({("relu", "maxpool")})


def execution_order(layers: Sequence[Layer]) -> list[int]:
    """The order a pass runs the layers in: their config order, with every relu that directly
    precedes a maxpool moved after it (pairs in COMMUTING).

    maxpool(relu(z)) and relu(maxpool(z)) are the same values, but the second applies relu
    (and, in backward, its mask) to a pooled map a quarter of the size (2x2 windows): on the
    lenet preset its two relus took 0.35 ms instead of 1.1 ms of a 19 ms training step (batch
    64, one worker, `cnncli bench`). Backward runs the same order reversed,
    each layer with its own cache, so its gradient is that of the function computed. It equals
    the config order's except at an exact tie at zero (a window whose largest value is exactly
    0.0 and whose first tap is negative): config order routes that window's gradient to the
    first tap and masks it to 0, this order routes it to the zero and passes it (relu'(0) = 1).
    Both are subgradients of the same function; `activations()` keeps the config order.
    """
    order = list(range(len(layers)))
    i = 0
    while i < len(layers) - 1:
        if (getattr(layers[i], "type_name", None), getattr(layers[i + 1], "type_name", None)) \
                in COMMUTING:
            order[i], order[i + 1] = i + 1, i
            i += 2
        else:
            i += 1
    return order


class Network:
    """An ordered list of built layers with named parameters `layers.<i>.<name>`."""

    def __init__(self, input_shape: Shape, layers: list[Layer]) -> None:
        self.input_shape = tuple(input_shape)
        self.layers = layers
        self.output_shape = layers[-1].output_shape if layers else self.input_shape

    def forward(self, x: np.ndarray, *, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        """x: (C, H, W, N) -> output (K, N). `rng` drives dropout when training.

        The layers run in `execution_order()`: config order, except that a relu directly
        followed by a maxpool runs after it (see there). The output is the same.
        """
        order = self._order = execution_order(self.layers)
        for i in order:
            x = self.layers[i].forward(x, training, rng)
        return x

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for x (evaluation mode), in order: what feature maps show.

        The layers run in config order (a relu's map before its maxpool is what a picture
        shows), and a backward after this pass follows that order too.
        """
        self._order = list(range(len(self.layers)))
        out = []
        for layer in self.layers:
            x = layer.forward(x, False, None)
            out.append(x)
        return out

    def backward(self, dout: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """dout: (K, N) -> dx: (C, H, W, N); each layer's grads are overwritten.

        Training needs no gradient with respect to the images: `input_grad=False` lets the
        first layer skip it (for a first conv layer, the largest col2im of the step) and
        returns None.
        """
        order = getattr(self, "_order", None) or execution_order(self.layers)
        for k in range(len(order) - 1, -1, -1):  # the last forward's order, reversed
            dout = self.layers[order[k]].backward(dout, input_grad=input_grad or k > 0)
        return dout if input_grad else None

    def named_parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under dotted names, e.g. `layers.0.weight`."""
        return {f"layers.{i}.{name}": p for i, layer in enumerate(self.layers)
                for name, p in layer.params.items()}

    def named_buffers(self) -> dict[str, np.ndarray]:
        """The live buffers (saved, not trained), e.g. `layers.3.running_mean`."""
        return {f"layers.{i}.{name}": b for i, layer in enumerate(self.layers)
                for name, b in layer.buffers.items()}

    def named_gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward, under the same names as the parameters."""
        return {f"layers.{i}.{name}": layer.grads[name] for i, layer in enumerate(self.layers)
                for name in layer.params}

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and buffers: everything a checkpoint saves of the model."""
        return {**self.named_parameters(), **self.named_buffers()}

    def load_parameters(self, arrays: Mapping[str, np.ndarray], source: str = "checkpoint"
                        ) -> None:
        """Copy saved parameters and buffers in, after check_state; nothing is copied when a
        check fails."""
        expected = self.state()
        check_state(arrays, {k: (v.shape, v.dtype) for k, v in expected.items()}, source)
        for name, ref in expected.items():
            ref[...] = arrays[name]

    def param_count(self) -> int:
        return sum(layer.param_count() for layer in self.layers)

    def get_config(self) -> dict[str, Any]:
        """{'input_shape': [C, H, W], 'layers': [spec, ...]}: enough to rebuild the model."""
        return {"input_shape": list(self.input_shape),
                "layers": [layer.get_config() for layer in self.layers]}


def check_state(arrays: Mapping[str, np.ndarray],
                expected: Mapping[str, tuple[Shape, np.dtype]], source: str) -> None:
    """Saved arrays fit a model: every expected name there with its shape and dtype, nothing
    extra, all finite; CheckpointError naming the first misfit."""
    missing = [k for k in expected if k not in arrays]
    extra = [k for k in arrays if k not in expected]
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"has unexpected tensor {extra[0]!r}"
        raise CheckpointError(
            f"{source}: the weights do not fit the model in its config: {what} (expected "
            f"{len(expected)} tensors, found {len(arrays)}); was it made by another "
            "architecture?")
    for name, (shape, dtype) in expected.items():
        arr = arrays[name]
        if arr.shape != tuple(shape) or arr.dtype != dtype:
            raise CheckpointError(
                f"{source}: {name} has shape {arr.shape} {arr.dtype}, the model in its config "
                f"expects {tuple(shape)} {np.dtype(dtype)}; was it made by another "
                "architecture?")
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{source}: {name} contains NaN or infinite values")


def state_shapes(input_shape: Sequence[int], specs: Sequence[LayerSpec | Mapping[str, Any]],
                 dtype: np.dtype | type = np.float32) -> dict[str, tuple[Shape, np.dtype]]:
    """The name, shape and dtype of every parameter and buffer the model will have, from the
    specs alone (what Network.state() of the built model holds)."""
    specs = as_specs(specs)
    shapes = [tuple(int(v) for v in input_shape), *infer_shapes(input_shape, specs)]
    out = {}
    for i, spec in enumerate(specs):
        for name, shape in {**spec.param_shapes(shapes[i]),
                            **spec.buffer_shapes(shapes[i])}.items():
            out[f"layers.{i}.{name}"] = (shape, np.dtype(dtype))
    return out


def build_model(
    input_shape: Sequence[int],
    specs: Sequence[LayerSpec | Mapping[str, Any]],
    *,
    rng: np.random.Generator | None = None,
    dtype: np.dtype | type = np.float32,
) -> Network:
    """Infer shapes, then create every layer's parameters from `rng`, in layer order.

    Errors name the layer: `layers[3] (conv): kernel 5x5 is bigger than its padded input ...`.
    """
    specs = resolve_specs(specs)
    infer_shapes(input_shape, specs)
    rng = rng if rng is not None else np.random.default_rng(0)
    _prime_allocator()
    shape: Shape = tuple(int(v) for v in input_shape)
    layers = []
    for spec in specs:
        layer = layer_for(spec)
        shape = layer.build(shape, rng, np.dtype(dtype))
        layers.append(layer)
    pack_parameters(layers)
    return Network(tuple(int(v) for v in input_shape), layers)


def pack_parameters(layers: Sequence[Layer]) -> np.ndarray | None:
    """Move every parameter into one flat array, in `named_parameters()` order; return it.

    Each `layer.params[name]` becomes a view of the same shape and values into that array, so
    an optimizer can update all of them at once (`optim.flat_span`): lenet's Adam step has ten
    parameters, and written array by array it spent most of its 0.6 ms in per-call overhead.
    The array is in shared memory (cnncli.sharedmem): worker processes forked by a
    DataParallel read the parameters where they are, and update their part of them.
    Nothing changes when the parameters have different dtypes (None is returned).
    """
    params = [(layer, name, p) for layer in layers for name, p in layer.params.items()]
    if not params or len({p.dtype for _, _, p in params}) != 1:
        return None
    flat, views = shared_views([p.shape for _, _, p in params], params[0][2].dtype)
    for (layer, name, p), view in zip(params, views, strict=True):
        view[...] = p
        layer.params[name] = view
    return flat


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


# -- the summary table, from specs alone ------------------------------------------------------


def summary_rows(input_shape: Sequence[int], specs: Sequence[LayerSpec | Mapping[str, Any]]
                 ) -> list[tuple[str, str, Shape, int]]:
    """(index, description, output shape, parameter count) per layer, the input first."""
    specs = as_specs(specs)
    shapes = infer_shapes(input_shape, specs)
    rows: list[tuple[str, str, Shape, int]] = [("", "input", tuple(input_shape), 0)]
    shape: Shape = tuple(input_shape)
    for i, (spec, out) in enumerate(zip(specs, shapes, strict=True)):
        rows.append((str(i), spec.describe(), out, spec.param_count(shape)))
        shape = out
    return rows


def format_summary(input_shape: Sequence[int],
                   specs: Sequence[LayerSpec | Mapping[str, Any]]) -> str:
    """A Keras-like table: layer, output shape (batch axis omitted), parameters, and the total."""
    body = summary_rows(input_shape, specs)
    rows = [("#", "layer", "output shape", "params")]
    for idx, desc, shape, count in body:
        rows.append((idx, desc, "(" + ", ".join(map(str, shape)) + ")", f"{count:,}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    rule = "-" * (sum(widths) + 6)

    def fmt(r: tuple[str, ...]) -> str:
        return (f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                f"{r[3]:>{widths[3]}}").rstrip()

    total = sum(r[3] for r in body)
    return "\n".join([fmt(rows[0]), rule, *(fmt(r) for r in rows[1:]), rule,
                      f"total parameters: {total:,}"])
