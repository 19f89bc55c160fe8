"""Arrays in anonymous shared memory: a process forked after one is made sees the same values.

Ordinary NumPy memory is copied on write in a forked child, so a worker process would keep
the values it was forked with. An array from `shared_zeros` lives in an anonymous MAP_SHARED
mapping instead: the parent's later writes are the child's reads, and back. The network's
packed parameters and the optimizer's flat state live there (cnncli.parallel_procs then
reads and updates them in place from both processes). Note the other direction too: after
any fork, a child's writes into such an array reach the parent. The memory is released when
the last view of it goes.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import numpy as np


class _SharedMap(mmap.mmap):
    """An anonymous MAP_SHARED mapping made by shared_zeros (the type tells is_shared)."""


def shared_zeros(n: int, dtype: np.dtype | type) -> np.ndarray:
    """A 1-D array of n zeros of `dtype` in its own anonymous shared mapping."""
    dtype = np.dtype(dtype)
    buf = _SharedMap(-1, max(n * dtype.itemsize, 1))  # MAP_SHARED | MAP_ANONYMOUS, zeroed
    return np.frombuffer(buf, dtype=dtype, count=n)


def shared_views(shapes: Sequence[tuple[int, ...]], dtype: np.dtype | type
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """One shared_zeros array holding arrays of `shapes` back to back, and a view of each."""
    flat = shared_zeros(sum(int(np.prod(s)) for s in shapes), dtype)
    views, a = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        views.append(flat[a : a + n].reshape(shape))
        a += n
    return flat, views


def is_shared(a: np.ndarray) -> bool:
    """Whether `a` is, or views, an array made by shared_zeros."""
    base: object = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, _SharedMap)
