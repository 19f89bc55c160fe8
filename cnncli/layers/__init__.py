"""Thin layer classes over cnncli.functional, registered by their YAML type name."""

from cnncli.layers import activations, conv, dense, pool  # noqa: F401  (registers the types)
from cnncli.layers.base import Layer
from cnncli.layers.registry import known_types, layer_class, register

__all__ = ["Layer", "known_types", "layer_class", "register"]
