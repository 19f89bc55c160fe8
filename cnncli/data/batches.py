"""Turning uint8 images into float batches, and the order batches are drawn in.

Images stay uint8 in memory (all of MNIST is about 55 MB); a batch is converted and
normalised only when it is made, straight into the batch-last layout (C, H, W, B).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnncli.errors import DataError

MEAN = 0.1307  # MNIST training-set pixel mean, on the 0..1 scale
STD = 0.3081  # and its standard deviation


def to_batch(images: np.ndarray, dtype: type = np.float32, mean: float = MEAN,
             std: float = STD) -> np.ndarray:
    """uint8 (B, H, W) or (B, C, H, W) -> normalised (C, H, W, B): (x/255 - mean) / std.

    One transposing, converting copy into a fresh C-contiguous array, then scaled in place
    (measured faster than a 256-entry lookup table: 48 vs 77 us for 64 MNIST images).
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(f"to_batch: expected uint8 images (B, H, W) or (B, C, H, W), received "
                        f"{images.dtype} {images.shape}")
    if images.ndim == 3:
        images = images[:, None]  # (B, H, W) -> (B, 1, H, W)
    out = np.empty(images.shape[1:] + images.shape[:1], dtype=dtype)  # (C, H, W, B)
    np.copyto(out, np.moveaxis(images, 0, -1))
    out *= dtype(1.0 / (255.0 * std))
    out -= dtype(mean / std)
    return out


def iterate_batches(
    n: int, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index arrays (int64) covering 0..n-1 once, `batch_size` at a time; the last may be short.

    Shuffled by `rng` when given (one permutation per call), in order otherwise.
    """
    if n < 0 or batch_size < 1:
        raise DataError(f"iterate_batches: needs n >= 0 and batch_size >= 1, received n={n}, "
                        f"batch_size={batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return (order[start : start + batch_size] for start in range(0, n, batch_size))
