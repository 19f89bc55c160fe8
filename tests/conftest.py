"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path:
    """The real dataset files: ../shared/data/<name> beside the repository (or beside its
    parent, for a git worktree), else /work/shared/data/<name>; the first of these when none
    exists (tests that need it skip, saying where they looked)."""
    for base in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data",
                 Path("/work/shared/data")):
        if (base / name).is_dir():
            return base / name
    return REPO.parent / "shared" / "data" / name


SHARED_MNIST = shared_data("mnist")
SHARED_FASHION = shared_data("fashion-mnist")


def images(*planes: list[list[float]], dtype: type = np.float64) -> np.ndarray:
    """Hand-written (H, W) planes -> a (C, H, W, 1) batch of one image, batch last."""
    return np.array(planes, dtype=dtype)[..., None]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
