"""Small generated digit-like data for fast training tests (never the real MNIST).

Each class is a seven-segment rendering of its digit, drawn at a random offset with random
stroke brightness on a noisy background: learnable in a few epochs by a tiny net, but not
trivially (shifts and noise vary per image). `write_idx_folder()` saves them as an IDX dataset
that the CLI reads through its ordinary data path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# segments a..g of a seven-segment display, per digit
_SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}
# (row0, row1, col0, col1) of each segment in a 16 x 10 glyph
_BOXES = {
    "a": (0, 2, 1, 9), "b": (1, 8, 8, 10), "c": (8, 15, 8, 10), "d": (14, 16, 1, 9),
    "e": (8, 15, 0, 2), "f": (1, 8, 0, 2), "g": (7, 9, 1, 9),
}


def make_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 28, 28) uint8 and labels (n,) uint8, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 50, (n, 28, 28)).astype(np.uint8)
    rows = rng.integers(2, 10, n)
    cols = rng.integers(4, 14, n)
    ink = rng.integers(160, 256, n)
    for i, label in enumerate(labels):
        for seg in _SEGMENTS[int(label)]:
            r0, r1, c0, c1 = _BOXES[seg]
            images[i, rows[i] + r0:rows[i] + r1, cols[i] + c0:cols[i] + c1] = ink[i]
    return images, labels


def write_idx_folder(folder: Path, pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
                     train: int = 400, test: int = 100) -> Path:
    """The generated digits (optionally zero-padded) as the four MNIST-named IDX files,
    uncompressed, in a new folder: a dataset `data: {dataset: idx}` reads like any other."""
    from cnncli.data.idx import encode_idx

    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = make_digits(n, seed)
        images = np.pad(images, ((0, 0), *pad))
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return folder
