"""The CnnError family: the library raises these, only cli.py turns them into exits.

Each kind carries the exit code the CLI should use: 2 for a bad config or usage
(the user must change what they typed), 1 for a runtime fault (data, checkpoint,
training).
"""

from __future__ import annotations


class CnnError(Exception):
    """Base of every error cnncli raises on purpose. The message is one line."""

    exit_code: int = 1


class ConfigError(CnnError):
    """A config, layer spec or option value is invalid."""

    exit_code = 2


class ShapeError(ConfigError):
    """A layer does not fit the shape it receives (kernel bigger than input, ...)."""


class DataError(CnnError):
    """A dataset could not be downloaded, verified or parsed."""


class CheckpointError(CnnError):
    """A checkpoint is missing, corrupt, truncated or from another architecture."""


class TrainingError(CnnError):
    """Training cannot go on (NaN or infinite loss, ...)."""


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
