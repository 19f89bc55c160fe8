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
