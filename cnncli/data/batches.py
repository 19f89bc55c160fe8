"""Turning uint8 images into float batches, and the order batches are drawn in.

Images stay uint8 in memory (all of MNIST is about 55 MB); a batch is converted and
normalised only when it is made, straight into the batch-last layout (C, H, W, B).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MEAN = 0.1307  # MNIST training-set pixel mean, on the 0..1 scale
STD = 0.3081  # and its standard deviation


def to_batch(images: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """uint8 (B, H, W) or (B, C, H, W) -> normalised (C, H, W, B): (x/255 - MEAN) / STD."""
    if images.ndim == 3:
        images = images[:, None]
    # (B, C, H, W) -> (C, H, W, B): one transposing copy, then scaled in place
    out = np.empty(images.shape[1:] + images.shape[:1], dtype=dtype)
    np.copyto(out, np.moveaxis(images, 0, -1))
    scale = dtype(1.0 / (255.0 * STD))
    shift = dtype(MEAN / STD)
    out *= scale
    out -= shift
    return out


def iterate_batches(
    n: int, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index arrays covering 0..n-1 in batches (shuffled by rng if given); the last may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
