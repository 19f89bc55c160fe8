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
from cnncli.flat import FlatLayout, shared_zeros
from cnncli.layers import LAYERS, Layer, LayerSpec, layer_for, parse_layer_spec
from cnncli.layers.base import FUSED_PAIRS, Step

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


class Network:
    """An ordered list of built layers with named parameters `layers.<i>.<name>`.

    The parameters lie end to end in one vector, `param_vector` (the layers' `params` are
    views into it, in `named_parameters()` order; in shared memory, so that processes forked
    later see every update), and after each backward pass the gradients
    lie the same way in `grad_vector` (the layers' `grads` become views into it): an optimizer
    or a sum of shard gradients then works on one array instead of one per tensor
    (cnncli.flat). Every parameter must have the same dtype.
    """

    def __init__(self, input_shape: Shape, layers: list[Layer]) -> None:
        self.input_shape = tuple(input_shape)
        self.layers = layers
        self.output_shape = layers[-1].output_shape if layers else self.input_shape
        params = self.named_parameters()
        dtypes = {p.dtype for p in params.values()}
        if len(dtypes) > 1:
            raise ValueError(f"a network's parameters must share one dtype, received "
                             f"{sorted(str(d) for d in dtypes)}")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float64)
        #: names, shapes and offsets of the parameters in param_vector and grad_vector
        self.layout = FlatLayout({k: p.shape for k, p in params.items()})
        #: every parameter, end to end; each layer's params are views into it. In shared
        #: memory: worker processes forked later (DataParallel) read the live values.
        self.param_vector = shared_zeros(self.layout.size, dtype)
        self.layout.gather(params, self.param_vector)
        self._bind(self.param_vector, "params")
        #: every gradient of the last backward pass, end to end (see collect_gradients)
        self.grad_vector = np.zeros(self.layout.size, dtype=dtype)
        self._grad_views = self._views(self.grad_vector)
        self._bind(self.grad_vector, "grads")  # zeros until the first backward pass
        self._steps: list[Step] = [step for _, step in self.steps()]  # the last forward's

    def __copy__(self) -> Network:
        """A shallow copy (the same layers and parameters) with a gradient vector of its own:
        a replica that runs backward must not write into this network's gradients."""
        other = Network.__new__(Network)
        other.__dict__.update(self.__dict__)
        other.grad_vector = np.zeros_like(self.grad_vector)
        other._grad_views = other._views(other.grad_vector)
        return other

    def _views(self, vector: np.ndarray) -> list[tuple[int, str, np.ndarray]]:
        """(layer index, parameter name, its view of vector), in named_parameters() order."""
        views = self.layout.views(vector)
        return [(i, name, views[f"layers.{i}.{name}"])
                for i, layer in enumerate(self.layers) for name in layer.params]

    def _bind(self, vector: np.ndarray, kind: str) -> None:
        """Make every layer's `params` (or `grads`) entries the views of vector."""
        for i, name, view in self._views(vector):
            getattr(self.layers[i], kind)[name] = view

    def collect_gradients(self) -> None:
        """Copy every layer's gradients into grad_vector and make them views of it (backward
        does it at the end; call it after running the layers' backward passes yourself).

        The views are the same array objects from step to step."""
        layers = self.layers
        for i, name, view in self._grad_views:
            grads = layers[i].grads
            g = grads[name]
            if g is not view:
                np.copyto(view, g)
                grads[name] = view

    def steps(self) -> list[tuple[int, Step]]:
        """What forward and backward run, in order, each with the index of its (first) layer:
        the layers, except that a layer and the next one that form a registered fused pair
        (cnncli.layers.base.FUSED_PAIRS, e.g. a relu then a maxpool) run as one step, with
        the same values."""
        layers = self.layers
        out: list[tuple[int, Step]] = []
        i = 0
        while i < len(layers):
            pair = layers[i:i + 2]
            make = FUSED_PAIRS.get((type(pair[0]), type(pair[-1]))) if len(pair) == 2 else None
            fused = make(*pair) if make is not None else None
            out.append((i, fused if fused is not None else layers[i]))
            i += 1 if fused is None else 2
        return out

    def forward(self, x: np.ndarray, *, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        """x: (C, H, W, N) -> output (K, N). `rng` drives dropout when training."""
        self._steps = [step for _, step in self.steps()]  # what backward runs back
        for step in self._steps:
            x = step.forward(x, training, rng)
        return x

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for x (evaluation mode), in order: what feature maps show."""
        out = []
        for layer in self.layers:
            x = layer.forward(x, False, None)
            out.append(x)
        return out

    def backward(self, dout: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """dout: (K, N) -> dx: (C, H, W, N); each layer's grads are overwritten (and collected
        into grad_vector).

        Training needs no gradient with respect to the images: `input_grad=False` lets the
        first layer skip it (for a first conv layer, the largest col2im of the step) and
        returns None.
        """
        steps = self._steps
        for i in range(len(steps) - 1, -1, -1):
            dout = steps[i].backward(dout, input_grad=input_grad or i > 0)
        self.collect_gradients()
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
    return Network(tuple(int(v) for v in input_shape), layers)


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
