"""The Layer contract: a thin stateful wrapper over a pure forward/backward pair.

Keras-like life cycle: `__init__` validates and stores the config, `build(input_shape, ...)`
infers the output shape and creates the parameters, `get_config()` / `from_config()` round-trip.
Shapes given to `build` exclude the batch axis: (C, H, W) for images, (D,) for flat vectors.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from cnncli.errors import ConfigError, quote

Shape = tuple[int, ...]


class Layer:
    """Base class. Subclasses set `type_name` via @register and implement forward/backward."""

    type_name: ClassVar[str] = ""
    #: for activations: whether the weighted layer before should default to He init (True, the
    #: ReLU family) or Glorot (False); None for layers that are not activations
    wants_he_init: ClassVar[bool | None] = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()

    # -- config -------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> list[str]:
        """The config fields this layer type accepts (its __init__ keyword arguments)."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Build from a spec without its `type` key; unknown fields are an error."""
        known = cls.fields()
        for key in config:
            if key not in known:
                listing = ", ".join(known) if known else "none"
                raise ConfigError(f"unknown field {quote(key)} (known: {listing})")
        return cls(**config)

    def get_config(self) -> dict[str, Any]:
        """The spec that rebuilds this layer: {'type': ..., field: value, ...}."""
        return {"type": self.type_name}

    # -- shapes and parameters ------------------------------------------------------------
    def build(
        self,
        input_shape: Shape,
        rng: np.random.Generator,
        dtype: np.dtype,
        he_default: bool = False,
    ) -> Shape:
        """Check the input shape, create parameters, return the output shape (no batch axis).

        `he_default` says whether a ReLU-family activation follows, so that layers with
        weights pick He initialisation (else Glorot) unless their config names one.
        """
        self.input_shape = tuple(input_shape)
        self.output_shape = self.infer_shape(self.input_shape)
        return self.output_shape

    def infer_shape(self, input_shape: Shape) -> Shape:
        """Output shape for this input shape; ShapeError when the layer does not fit."""
        return input_shape

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # -- math -----------------------------------------------------------------------------
    def forward(
        self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_params(self, dout: np.ndarray) -> None:
        """Fill the parameter gradients only, for a first layer whose dx nobody needs.

        Layers that can skip their input gradient (conv, dense) override this.
        """
        self.backward(dout)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"
