"""Loss objects over the pure functions: `softmax_cross_entropy` and `mse`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.errors import ConfigError, quote
from cnncli.functional import losses as F


class Loss:
    """forward(out (K, N), y (N,)) -> mean loss; backward() -> d out (K, N)."""

    name = ""

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Softmax over the K outputs then cross-entropy; gradient (p - onehot(y)) / N."""

    name = "softmax_cross_entropy"

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        loss, self._cache = F.softmax_cross_entropy_forward(out, y)
        return loss

    def backward(self) -> np.ndarray:
        return F.softmax_cross_entropy_backward(self._cache)


class MSE(Loss):
    """1/2 squared error against one-hot targets (pair it with a sigmoid output)."""

    name = "mse"

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        loss, self._cache = F.mse_forward(out, y)
        return loss

    def backward(self) -> np.ndarray:
        return F.mse_backward(self._cache)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (SoftmaxCrossEntropy, MSE)}


def build_loss(name: object) -> Loss:
    """A new loss object by name; ConfigError listing the known names otherwise."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(f"unknown loss {quote(name)} (known: {', '.join(sorted(LOSSES))})")
    return LOSSES[name]()
