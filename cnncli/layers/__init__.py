"""Thin layer classes over cnncli.functional, each with its Spec, registered by type name."""

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from cnncli.layers import activations, batchnorm, conv, dense, pool  # noqa: F401  (registers)
from cnncli.layers.base import LAYERS, CheckCase, Layer, LayerSpec, register_layer

#: any registered layer's spec, told apart by `type` (a discriminated union for pydantic)
AnyLayerSpec = Annotated[
    Union[tuple(cls.Spec for _, cls in LAYERS.items())],  # type: ignore[misc]  # noqa: UP007
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyLayerSpec)


def parse_layer_spec(data: Any) -> LayerSpec:
    """A plain mapping such as {'type': 'conv', 'filters': 6, 'kernel': 5} -> its LayerSpec;
    ConfigError locating the bad field (kind = the layer type)."""
    from cnncli.spec import check

    return check(_ADAPTER, data)


def layer_for(spec: LayerSpec) -> Layer:
    """A new, unbuilt layer for a spec."""
    return LAYERS.get(spec.type)(spec)


__all__ = ["LAYERS", "AnyLayerSpec", "CheckCase", "Layer", "LayerSpec", "layer_for",
           "parse_layer_spec", "register_layer"]
