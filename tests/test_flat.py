"""flat.py: named views laid end to end, and finding the vector a list of arrays tiles."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from cnncli.flat import FlatLayout, is_shared, shared_zeros, tiled

SHAPES = {"a": (2, 3), "b": (3,), "c": (2, 2, 2)}


def test_views_lie_end_to_end_in_the_layout_order() -> None:
    layout = FlatLayout(SHAPES)
    vector = np.arange(layout.size, dtype=np.float32)
    views = layout.views(vector)
    assert layout.size == 17 and layout.offsets == [0, 6, 9, 17]
    assert views["a"].shape == (2, 3) and views["a"][1, 2] == 5
    assert views["b"].tolist() == [6, 7, 8]
    assert views["c"][0, 0, 0] == 9 and views["c"][1, 1, 1] == 16
    views["b"][0] = -1  # a view: writing writes the vector
    assert vector[6] == -1
    with pytest.raises(ValueError, match="17 values"):
        layout.views(vector[:5])


def test_gather_copies_every_array_into_its_place() -> None:
    layout = FlatLayout(SHAPES)
    arrays = {k: np.full(s, i + 1.0) for i, (k, s) in enumerate(SHAPES.items())}
    vector = np.zeros(layout.size)
    layout.gather(arrays, vector)
    assert vector.tolist() == [1.0] * 6 + [2.0] * 3 + [3.0] * 8


def test_tiled_gives_the_covered_slice_only_for_views_in_order() -> None:
    layout = FlatLayout(SHAPES)
    vector = np.zeros(layout.size + 4, dtype=np.float32)
    views = layout.views(vector[2:-2])
    whole = tiled(list(views.values()))
    assert whole is not None and whole.shape == (17,)
    whole[...] = 7  # the same memory as the views
    assert vector[1] == 0 and vector[2] == 7 and vector[18] == 7 and vector[19] == 0
    assert tiled([views["a"], views["b"]]).shape == (9,)  # a leading part tiles too
    assert tiled([views["b"], views["a"]]) is None  # out of order
    assert tiled([views["a"], views["c"]]) is None  # a gap
    assert tiled([views["a"][:, :2], views["b"]]) is None  # not contiguous
    assert tiled([np.zeros(3), np.zeros(2)]) is None  # separate arrays
    assert tiled([]) is None


def test_tiled_finds_views_of_a_row_of_a_shared_memory_block() -> None:
    layout = FlatLayout(SHAPES)
    mem = mmap.mmap(-1, 4096)
    block = np.frombuffer(mem, dtype=np.float32, count=3 * layout.size).reshape(3, -1)
    whole = tiled(list(layout.views(block[1]).values()))
    assert whole is not None and np.shares_memory(whole, block[1])
    assert not np.shares_memory(whole, block[0]) and not np.shares_memory(whole, block[2])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_shared_zeros_are_seen_and_written_by_a_process_forked_later() -> None:
    a = shared_zeros(5, np.float32)
    assert a.dtype == np.float32 and a.tolist() == [0.0] * 5 and is_shared(a[1:3])
    assert not is_shared(np.zeros(5))
    a[0] = 1.5
    pid = os.fork()
    if pid == 0:  # the child: reads the parent's value, writes one back
        a[1] = a[0] * 2
        os._exit(0)
    os.waitpid(pid, 0)
    assert a[1] == 3.0
