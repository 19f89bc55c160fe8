"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def images(*planes: list[list[float]], dtype: type = np.float64) -> np.ndarray:
    """Hand-written (H, W) planes -> a (C, H, W, 1) batch of one image, batch last."""
    return np.array(planes, dtype=dtype)[..., None]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
