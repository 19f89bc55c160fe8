"""Loss objects over the pure functions, registered by the name a config's `loss` gives:
`softmax_cross_entropy` and `mse`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.functional import losses as F
from cnncli.registry import Registry


class Loss:
    """forward(out (K, N), y (N,)) -> mean loss; backward() -> d out (K, N)."""

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        """The network's outputs (K, N) as class scores that sum to 1 per column."""
        raise NotImplementedError


LOSSES: Registry[type[Loss]] = Registry("loss")


@LOSSES.register("softmax_cross_entropy")
class SoftmaxCrossEntropy(Loss):
    """Softmax over the K outputs then cross-entropy; gradient (p - onehot(y)) / N."""

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        loss, self._cache = F.softmax_cross_entropy_forward(out, y)
        return loss

    def backward(self) -> np.ndarray:
        return F.softmax_cross_entropy_backward(self._cache)

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        return F.softmax(out)


@LOSSES.register("mse")
class MSE(Loss):
    """1/2 squared error against one-hot targets (pair it with a sigmoid output)."""

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        loss, self._cache = F.mse_forward(out, y)
        return loss

    def backward(self) -> np.ndarray:
        return F.mse_backward(self._cache)

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        """Sigmoid outputs normalised to sum to 1 (the scores are not probabilities)."""
        clipped = np.clip(out, 0, None)
        total = clipped.sum(axis=0, keepdims=True)
        return np.divide(clipped, total, out=np.full_like(clipped, 1.0 / out.shape[0]),
                         where=total > 0)


def build_loss(name: object) -> Loss:
    """A new loss object by name; ConfigError listing the known names otherwise."""
    return LOSSES.get(name)()
