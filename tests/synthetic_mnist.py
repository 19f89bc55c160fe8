"""Small generated digit-like data for fast training tests (never the real MNIST).

Each class is a seven-segment rendering of its digit, drawn at a random offset with random
stroke brightness on a noisy background: learnable in a few epochs by a tiny net, but not
trivially (shifts and noise vary per image). `use_generated_data()` makes the CLI load them
instead of MNIST (tests only).
"""

from __future__ import annotations

from typing import Any

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


def load_generated(run: Any, *, data_dir: Any = None, mirrors: Any = (), progress: Any = None,
                   report: Any = None) -> Any:
    """A stand-in for cnncli.train.load_dataset: generated digits, split as the config says
    (400 training images, 100 test images; the data options are ignored)."""
    from cnncli.train import make_dataset

    train_images, train_labels = make_digits(400, seed=0)
    test_images, test_labels = make_digits(100, seed=1)
    return make_dataset(train_images, train_labels, test_images, test_labels,
                        run.train.val_split, run.train.limit)


def use_generated_data() -> None:
    """Make every later `cnncli train`/`eval` in this process load the generated digits."""
    import cnncli.train

    cnncli.train.load_dataset = load_generated
