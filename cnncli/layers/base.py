"""The Layer contract: a thin stateful wrapper over a pure forward/backward pair.

Each layer type is defined in one place: its module declares the layer's `Spec` (a pydantic
model: the fields a YAML spec may give, their types and ranges, the output shape for an input
shape) and the layer class over it, registered by the spec's `type`:

    class ReluSpec(LayerSpec):
        type: Literal["relu"]

    @register_layer
    class ReLU(Layer):
        Spec = ReluSpec
        ...

Keras-like life cycle: a validated spec, then `build(input_shape, rng, dtype)` creates the
parameters; `get_config()` gives the spec back as a plain dict. Shapes exclude the batch axis:
(C, H, W) for images, (D,) for flat vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from cnncli.layers.init import BIAS_INITIALISERS, INITIALISERS
from cnncli.registry import Registry
from cnncli.spec import Spec

Shape = tuple[int, ...]


class LayerSpec(Spec):
    """What a YAML layer spec may say. Subclasses add `type: Literal[name]` and their fields."""

    tag_kind: ClassVar[str] = "layer type"
    type: str

    def output_shape(self, input_shape: Shape) -> Shape:
        """The output shape for this input shape (no batch axis); ShapeError if it does not fit."""
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each trained parameter for this input shape, e.g. {'weight': ...}."""
        return {}

    def buffer_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each buffer (saved, not trained) for this input shape."""
        return {}

    def param_count(self, input_shape: Shape) -> int:
        """Trained parameters this layer holds for this input shape."""
        return sum(math.prod(s) for s in self.param_shapes(input_shape).values())

    def describe(self) -> str:
        """A short readable description for the summary table, e.g. `conv 6@5x5 s1 same`."""
        return self.type

    def check_inputs(self, before: Sequence[LayerSpec], sign_of: Callable[[LayerSpec], str]
                     ) -> None:
        """Check what the layers before this one can output (ShapeError if this layer cannot
        take it); `sign_of(spec)` is that layer type's output_sign. Nothing by default."""


@dataclass(frozen=True)
class CheckCase:
    """One configuration `cnncli gradcheck` checks a layer type in.

    input: 'normal' (standard normal), 'away' (at least 0.1 from 0: no ReLU kink in reach of
    the finite-difference steps), 'distinct' (no two values close: no max-pool near-tie),
    'positive' (uniform in [0.1, 1]).
    """

    name: str
    spec: dict[str, Any]
    input_shape: Shape
    input: str = "normal"
    #: the forward mode checked (a layer like stochpool is smooth only at evaluation)
    training: bool = True
    #: images per check (batch statistics need more than two)
    batch: int = 2


class Layer:
    """Base class: holds its spec, parameters, gradients and buffers; calls the pure functions."""

    Spec: ClassVar[type[LayerSpec]] = LayerSpec
    type_name: ClassVar[str] = ""
    #: for activations: whether a weighted layer before it should default to He initialisation
    #: (True, the ReLU family) or Glorot (False); None for layers that are not activations
    prefers_he_init: ClassVar[bool | None] = None
    #: whether forward makes a discrete choice (ReLU's mask, max-pool's argmax) whose
    #: fingerprint `kink_state()` gives, so gradcheck can tell a kink from a bug
    kinked: ClassVar[bool] = False
    #: the configurations `cnncli gradcheck` checks this layer type in
    check_cases: ClassVar[tuple[CheckCase, ...]] = ()
    #: what its outputs' signs are: 'non-negative' (relu, sigmoid), 'same' as its inputs'
    #: (pooling, dropout, flatten), or 'any'
    output_sign: ClassVar[str] = "any"

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        #: arrays saved with the parameters but not trained (e.g. running statistics)
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        """The spec that rebuilds this layer: {'type': ..., field: value, ...}."""
        return self.spec.model_dump(mode="json")

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        """Create the parameters for this input shape; returns the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.spec.output_shape(self.input_shape)
        self.create_params(rng, np.dtype(dtype))
        return self.output_shape

    def create_params(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Fill self.params (and self.buffers) for self.input_shape; none by default."""

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        """x: (*input_shape, N) -> (*output_shape, N). `rng` drives randomness in training."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dout: (*output_shape, N) -> dx: (*input_shape, N), filling self.grads.

        With input_grad=False the layer may skip dx (and return None): a network's first layer
        needs no gradient with respect to the images.
        """
        raise NotImplementedError

    def kink_state(self) -> bytes:
        """A fingerprint of the last forward's discrete choices (empty when not kinked)."""
        return b""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


LAYERS: Registry[type[Layer]] = Registry("layer type")


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer buildable as `{type: name}`, the name being its Spec's
    `type` literal. Refuses duplicates."""
    name = get_args(cls.Spec.model_fields["type"].annotation)
    if not name:
        raise ValueError(f"{cls.__name__}.Spec needs `type: Literal['name']`")
    cls.type_name = str(name[0])
    LAYERS.add(cls.type_name, cls)
    return cls


class WeightedLayer(Layer):
    """A layer with a weight and a bias (conv, dense): shared parameter and gradient code.

    The spec gives the shapes (`param_shapes`: 'weight' and 'bias'); subclasses give the fans
    for initialisation (`fans()`) and the pure pair as `_forward(x, w, b, *self.args())` and
    `_backward(dout, cache, input_grad)`.
    """

    _forward: ClassVar[Callable[..., Any]]
    _backward: ClassVar[Callable[..., Any]]

    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of the weight, for He and Glorot."""
        raise NotImplementedError

    def args(self) -> tuple[Any, ...]:
        """Extra arguments of the forward function after (x, w, b)."""
        return ()

    def create_params(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Weights from the spec's `init` (Glorot when unset) and zero biases, or biases from
        the initialiser's own bias rule when it has one (BIAS_INITIALISERS: pytorch)."""
        shapes = self.spec.param_shapes(self.input_shape)
        fan_in, fan_out = self.fans()
        init = getattr(self.spec, "init", None) or "glorot"
        weight = INITIALISERS.get(init)(shapes["weight"], fan_in, fan_out, rng, dtype)
        bias_init = BIAS_INITIALISERS.get(init)
        bias = (bias_init(shapes["bias"], fan_in, fan_out, rng, dtype) if bias_init
                else np.zeros(shapes["bias"], dtype=dtype))
        self.params = {"weight": weight, "bias": bias}

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        out, self._cache = type(self)._forward(x, self.params["weight"], self.params["bias"],
                                               *self.args())
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, self.grads["weight"], self.grads["bias"] = type(self)._backward(
            dout, self._cache, input_grad)
        return dx


#: the `init` names a weighted layer accepts (None: chosen by what follows the layer)
InitName = Literal[tuple(INITIALISERS.names())]  # type: ignore[valid-type]
