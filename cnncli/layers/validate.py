"""Small validators for layer fields. Each raises ConfigError quoting the received value."""

from __future__ import annotations

import math
from typing import Any

from cnncli.errors import ConfigError, quote


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(field: str, value: Any) -> int:
    """An int >= 1."""
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{field} must be a positive integer, received {quote(value)}")
    return int(value)


def pair(field: str, value: Any) -> tuple[int, int]:
    """A positive int or a [h, w] pair of positive ints -> (h, w)."""
    if _is_int(value):
        return positive_int(field, value), positive_int(field, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
        if min(value) >= 1:
            return int(value[0]), int(value[1])
    raise ConfigError(
        f"{field} must be a positive integer or a [height, width] pair, received {quote(value)}"
    )


def fraction(field: str, value: Any, *, low_open: bool = False, high_open: bool = True) -> float:
    """A float in [0, 1) (or (0, 1) / [0, 1] as asked)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)
    if not ok:
        lo = "(0" if low_open else "[0"
        hi = "1)" if high_open else "1]"
        raise ConfigError(f"{field} must be a number in {lo}, {hi}, received {quote(value)}")
    return float(value)


def non_negative_number(field: str, value: Any) -> float:
    """A finite number >= 0."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ConfigError(f"{field} must be a finite non-negative number, received "
                          f"{quote(value)}")
    return float(value)


def choice(field: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{field} must be one of {', '.join(options)}, received {quote(value)}")
    return str(value)
