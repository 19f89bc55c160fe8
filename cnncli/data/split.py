"""The parts of a dataset a run uses: a fixed train/validation split of the training file, an
optional `limit`, and the test file.

    data = make_dataset(arrays, val_split=0.1, limit=None)
    data.train.images      # (54000, 28, 28) uint8     data.val, data.test likewise
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: seeds the fixed train/validation split; independent of train.seed so that every run of a
#: config validates on the same images
SPLIT_SEED = 1998


@dataclass
class Split:
    """Images (N, H, W) uint8 and labels (N,) int64 of one part of a dataset."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """The images a run trains on, validates on (optional) and tests on (optional)."""

    train: Split
    val: Split | None
    test: Split | None


def split_indices(n: int, val_split: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/validation split of n images -> (train_idx, val_idx), each ascending.

    round(val_split * n) images go to validation, chosen by a permutation drawn from a
    generator seeded with SPLIT_SEED: the same images for every train.seed, mixed over the
    whole file (so every class is represented).
    """
    n_val = int(round(val_split * n))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_dataset(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray | None,
    test_labels: np.ndarray | None,
    val_split: float,
    limit: int | None = None,
) -> Dataset:
    """Split the training file into train/validation (split_indices), then keep the first
    `limit` training images. Validation and test sets are never limited."""
    train_idx, val_idx = split_indices(len(train_labels), val_split)
    if limit is not None:
        train_idx = train_idx[:limit]
    labels = train_labels.astype(np.int64, copy=False)
    train = Split(train_images[train_idx], labels[train_idx])
    val = Split(train_images[val_idx], labels[val_idx]) if len(val_idx) else None
    test = None
    if test_images is not None and test_labels is not None:
        test = Split(test_images, test_labels.astype(np.int64, copy=False))
    return Dataset(train, val, test)
