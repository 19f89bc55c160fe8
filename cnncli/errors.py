"""The CnnError family: the library raises these, only the CLI turns them into exits.

Each kind carries the exit code the CLI should use: 2 for a bad config or usage (the user must
change what they typed), 1 for a runtime fault (data, checkpoint, training).

A ConfigError carries where the bad value sits as data, not text: `loc` is a path tuple such as
('model', 'layers', 3, 'kernel'), `kind` names the layer or section type there ('conv') and
`source` says who set it (a file, or the `--set` that changed it). The one-line message is made
from them at the edge, `str(error)`:

    configs/x.yaml: model.layers[3] (conv): kernel: must be >= 1, received 0
"""

from __future__ import annotations

PathPart = str | int
Loc = tuple[PathPart, ...]


class CnnError(Exception):
    """Base of every error cnncli raises on purpose. The message is one line."""

    exit_code: int = 1


class ConfigError(CnnError):
    """A config, layer spec or option value is invalid."""

    exit_code = 2

    def __init__(self, message: str, *, loc: Loc = (), source: str | None = None,
                 kind: str | None = None, kind_depth: int | None = None) -> None:
        super().__init__(message)
        self.message, self.loc, self.source = message, tuple(loc), source
        #: the type of the element at loc[:kind_depth] (a layer's 'conv'), shown after it
        self.kind = kind
        self.kind_depth = len(self.loc) if kind_depth is None else kind_depth

    def located(self, prefix: Loc = (), *, source: str | None = None,
                kind: str | None = None) -> ConfigError:
        """A copy of this error (same class) with `prefix` put before its location; `kind`
        (naming the element at `prefix`) and `source` fill in where the error has none."""
        if self.kind is None and kind is not None:
            new_kind, depth = kind, len(prefix)
        else:
            new_kind, depth = self.kind, len(prefix) + self.kind_depth
        return type(self)(self.message, loc=(*prefix, *self.loc), source=self.source or source,
                          kind=new_kind, kind_depth=depth)

    def __str__(self) -> str:
        head = format_path(self.loc[: self.kind_depth])
        if head and self.kind:
            head += f" ({self.kind})"
        parts = [self.source, head, format_path(self.loc[self.kind_depth:]), self.message]
        return ": ".join(p for p in parts if p)


class ShapeError(ConfigError):
    """A layer does not fit the shape it receives (kernel bigger than input, ...)."""


class DataError(CnnError):
    """A dataset could not be downloaded, verified or parsed."""


class CheckpointError(CnnError):
    """A checkpoint is missing, corrupt, truncated or from another architecture."""


class TrainingError(CnnError):
    """Training cannot go on (NaN or infinite loss, ...)."""


def format_path(path: Loc) -> str:
    """('model', 'layers', 3, 'filters') -> 'model.layers[3].filters'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def quote(value: object, limit: int = 60) -> str:
    """A received value as an error message shows it, on one line and at most `limit` chars.

    Scalars read as the user wrote them in YAML (true, null, 'text', 1.5, NaN); lists and
    mappings show their first items. The walk is bounded, so a value built from YAML aliases
    (billions of items once expanded) or nested thousands deep costs microseconds, not memory.
    """
    text = _brief(value, depth=0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _brief(value: object, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else f"<a {value.bit_length()}-bit integer>"
    if isinstance(value, float):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(repr(value),
                                                                         repr(value))
    if isinstance(value, str):
        return repr(value[:80] + ("..." if len(value) > 80 else ""))
    if depth >= 3 and isinstance(value, (list, tuple, dict)):
        return "[...]" if isinstance(value, (list, tuple)) else "{...}"
    if isinstance(value, (list, tuple)):
        items = [_brief(v, depth + 1) for v in value[:6]]
        return "[" + ", ".join(items + (["..."] if len(value) > 6 else [])) + "]"
    if isinstance(value, dict):
        pairs = [f"{_brief(k, depth + 1)}: {_brief(v, depth + 1)}"
                 for k, v in list(value.items())[:4]]
        return "{" + ", ".join(pairs + (["..."] if len(value) > 4 else [])) + "}"
    return repr(value)[:80]
