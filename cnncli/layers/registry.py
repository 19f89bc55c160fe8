"""Layer types registered by the name a YAML spec gives as `type` (Caffe's layer factory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from cnncli.errors import ConfigError, quote

if TYPE_CHECKING:
    from cnncli.layers.base import Layer

L = TypeVar("L", bound="type[Layer]")

_REGISTRY: dict[str, type[Layer]] = {}


def register(name: str) -> Callable[[L], L]:
    """Class decorator: make a layer class buildable as `{type: name}`. Refuses duplicates."""

    def wrap(cls: L) -> L:
        if name in _REGISTRY:
            raise ValueError(f"layer type {name!r} is already registered by {_REGISTRY[name]!r}")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def known_types() -> list[str]:
    """Every registered layer type name, sorted."""
    return sorted(_REGISTRY)


def layer_class(name: object) -> type[Layer]:
    """The class registered under `name`; ConfigError listing the known ones otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(f"unknown layer type {quote(name)} (known: {', '.join(known_types())})")
    return _REGISTRY[name]
