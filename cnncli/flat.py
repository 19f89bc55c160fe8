"""Many named arrays laid end to end in one 1-D array: a network's parameters, its gradients.

    layout = FlatLayout({"layers.0.weight": (6, 1, 5, 5), "layers.0.bias": (6,)})
    vector = np.zeros(layout.size, np.float32)       # every value, end to end
    views = layout.views(vector)                     # name -> a view of vector with its shape
    tiled([views["layers.0.weight"], views["layers.0.bias"]]) is the whole vector again

Why: an optimizer step over LeNet's 10 small tensors was about 100 NumPy calls, mostly
per-call overhead; over one vector it is about 14. Elementwise maths over the whole vector
does the same operations on the same values as over each array in turn, so every element gets
the same bits. `tiled` finds that vector behind a list of arrays, so a caller that passes plain
separate arrays still works (element by element, array by array).
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Mapping, Sequence

import numpy as np

Shape = tuple[int, ...]


class FlatLayout:
    """Names, shapes and offsets of arrays laid end to end, in the mapping's order."""

    def __init__(self, shapes: Mapping[str, Shape]) -> None:
        self.shapes = {k: tuple(int(v) for v in s) for k, s in shapes.items()}
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.offsets = np.cumsum([0, *sizes]).tolist()
        #: the total number of elements
        self.size = int(self.offsets[-1])

    def views(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """vector: (size,) -> {name: view of vector[offset:offset+n] with the name's shape}."""
        if vector.shape != (self.size,):
            raise ValueError(f"a flat vector of {self.size} values is needed, received shape "
                             f"{vector.shape}")
        return {k: vector[a:b].reshape(s) for (k, s), a, b in
                zip(self.shapes.items(), self.offsets[:-1], self.offsets[1:], strict=True)}

    def gather(self, arrays: Mapping[str, np.ndarray], vector: np.ndarray) -> None:
        """Copy every named array into its place in vector (size,)."""
        for (k, s), a, b in zip(self.shapes.items(), self.offsets[:-1], self.offsets[1:],
                                strict=True):
            np.copyto(vector[a:b].reshape(s), arrays[k])


def shared_zeros(size: int, dtype: np.dtype | type) -> np.ndarray:
    """A zeroed (size,) array in anonymous shared memory: a process forked after it was made
    reads and writes the same values (a network's parameters, read by DataParallel's worker
    processes without a copy per step)."""
    dtype = np.dtype(dtype)
    mem = mmap.mmap(-1, max(1, size * dtype.itemsize))  # MAP_SHARED, zero-filled
    return np.frombuffer(mem, dtype=dtype, count=size)


def is_shared(a: np.ndarray) -> bool:
    """Whether a lies in memory made by shared_zeros (or another shared mmap)."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer's base
        base = base.obj
    return isinstance(base, mmap.mmap)


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def tiled(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The 1-D array that `arrays` tile end to end, in order, or None when they do not.

    They tile one when all are C-contiguous views of one 1-D array of their common dtype,
    each starting where the one before ends; the result is the slice of that array they cover
    (a view: writing to it writes to them).
    """
    if not arrays:
        return None
    owner = arrays[0].base
    if not isinstance(owner, np.ndarray) or owner.ndim != 1 or not owner.flags.c_contiguous:
        return None
    dtype, item = owner.dtype, owner.dtype.itemsize
    start = _address(owner)
    at = _address(arrays[0])
    first = at
    for a in arrays:
        if (a.base is not owner or a.dtype != dtype or not a.flags.c_contiguous
                or _address(a) != at):
            return None
        at += a.nbytes
    lo, hi = (first - start) // item, (at - start) // item
    if lo < 0 or hi > owner.size:
        return None
    return owner[lo:hi]
