"""One registry helper for everything a config names: layers, losses, optimizers, schedules,
initialisers (Caffe's layer factory, generalised).

    OPTIMIZERS = Registry("optimizer")

    @OPTIMIZERS.register("sgd")
    class SGD: ...

    OPTIMIZERS.get("sgd")      # the class
    OPTIMIZERS.get("sgdd")     # ConfigError: unknown optimizer 'sgdd' (known: adam, sgd)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cnncli.errors import ConfigError, quote

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind registered under unique names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated item as `name`. Refuses duplicates."""

        def wrap(item: T) -> T:
            self.add(name, item)
            return item

        return wrap

    def add(self, name: str, item: T) -> None:
        """Register `item` as `name`; a name registered twice is a programming error."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered by "
                             f"{self._items[name]!r}")
        self._items[name] = item

    def get(self, name: object) -> T:
        """The item registered as `name`; ConfigError listing the known names otherwise."""
        if not isinstance(name, str) or name not in self._items:
            raise ConfigError(f"unknown {self.kind} {quote(name)} "
                              f"(known: {', '.join(self.names())})")
        return self._items[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, item) pairs in name order."""
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
