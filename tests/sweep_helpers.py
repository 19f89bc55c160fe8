"""Shared by the sweep tests: a tiny config on a synthetic IDX folder, so every trial (in this
process or in a Ray worker) loads its data through the ordinary `data: {dataset: idx}` path."""

from __future__ import annotations

from pathlib import Path

from synthetic_mnist import make_digits

from cnncli.data.idx import encode_idx

TINY = """\
model:
  layers:
    - {{type: conv, filters: 4, kernel: 5}}
    - {{type: relu}}
    - {{type: maxpool, size: 4}}
    - {{type: flatten}}
    - {{type: dense, units: 10}}
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: {epochs}, batch_size: 32, val_split: 0.2}}
data: {{dataset: idx, data_dir: {data}}}
"""


def write_idx_folder(folder: Path) -> Path:
    """The generated digits (400 training, 100 test) as the four MNIST-named IDX files."""
    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", 400, 0), ("t10k", 100, 1)):
        images, labels = make_digits(n, seed)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return folder


def tiny_config(folder: Path, epochs: int = 2) -> Path:
    """folder/tiny.yaml: the tiny net on folder/digits (written if missing)."""
    data = folder / "digits"
    if not data.exists():
        write_idx_folder(data)
    path = folder / "tiny.yaml"
    path.write_text(TINY.format(epochs=epochs, data=data))
    return path
