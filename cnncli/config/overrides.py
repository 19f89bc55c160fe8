"""Command-line overrides: `--set key.path=value`, applied to the parsed YAML before validation.

    ov = Override.parse("model.layers[3].filters=32")
    ov.path                     # ('model', 'layers', 3, 'filters')
    apply_override(data, ov)    # data is the plain mapping yaml gave
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cnncli.config.yaml_io import safe_load
from cnncli.errors import ConfigError, Loc, PathPart, format_path, quote

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d{1,9}\])*)")


def parse_key_path(text: str) -> Loc:
    """'model.layers[3].filters' -> ('model', 'layers', 3, 'filters'); ConfigError if malformed."""
    parts: list[PathPart] = []
    for piece in text.split("."):
        m = _PART.fullmatch(piece)
        if m is None:
            raise ConfigError(f"bad key path {text!r}: expected names joined by dots, e.g. "
                              "optimizer.lr or model.layers[0].filters")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


@dataclass(frozen=True)
class Override:
    """One `key.path=value` change, and where it came from (for error messages)."""

    path: Loc
    value: Any
    source: str

    @classmethod
    def parse(cls, text: str) -> Override:
        """'optimizer.lr=0.01' -> Override; the value is parsed as YAML (so 8 is an int)."""
        source = f"--set {text if len(text) <= 80 else text[:77] + '...'}"
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. optimizer.lr=0.01")
        value = safe_load(raw, f"{source}: the value") if raw.strip() else None
        try:
            path = parse_key_path(key.strip())
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls(path, value, source)

    @classmethod
    def of(cls, option: str, key: str, value: Any) -> Override:
        """An override from a dedicated option, e.g. Override.of('--lr', 'optimizer.lr', 0.1)."""
        return cls(parse_key_path(key), value, option)


def apply_override(data: dict[str, Any], ov: Override) -> None:
    """Set ov.value at ov.path inside `data` (in place), creating missing mappings."""
    node: Any = data
    for depth, part in enumerate(ov.path[:-1]):
        node = _step_into(node, part, ov, depth)
    _check_container(node, ov.path[-1], ov, len(ov.path) - 1)
    node[ov.path[-1]] = ov.value


def _check_container(node: Any, part: PathPart, ov: Override, depth: int) -> None:
    here = format_path(ov.path[:depth]) or "the top level"
    if isinstance(part, int):
        if not isinstance(node, list):
            raise ConfigError(f"{ov.source}: {here} is not a list, received {quote(node)}")
        if part >= len(node):
            raise ConfigError(f"{ov.source}: {here} has {len(node)} items, no index {part}")
    elif not isinstance(node, dict):
        raise ConfigError(f"{ov.source}: {here} is not a mapping, received {quote(node)}")


def _step_into(node: Any, part: PathPart, ov: Override, depth: int) -> Any:
    _check_container(node, part, ov, depth)
    if isinstance(part, str) and node.get(part) is None:
        node[part] = {}
    return node[part]


def origin(loc: Loc, source: str, overrides: Any) -> str:
    """Who set the value at loc: the last override on or above that path, else the file."""
    for ov in reversed(list(overrides)):
        n = min(len(ov.path), len(loc))
        if ov.path[:n] == loc[:n]:
            return ov.source
    return source
