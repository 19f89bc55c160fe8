"""Where a run's images come from, as a parameter: a DataSource gives the four arrays of a
dataset and says what they are (their identity, class names, normalisation).

    source = FetchingSource(data_dir="/data/mnist", mirrors=("../shared/data/mnist",))
    arrays = source.load(config.run.data)        # fetched and verified if needed
    arrays.identity                              # {'dataset': 'mnist', 'files': {...}}

Tests and library users hand the trainer an ArraySource holding arrays they made; nothing is
patched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cnncli.data.batches import MEAN, STD
from cnncli.errors import ConfigError


@dataclass
class DataArrays:
    """A dataset's four arrays (uint8 images (N, H, W), labels (N,)) and what they are."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    #: what the data is, as a checkpoint records it: {'dataset': ..., 'files': {name: sha256}}
    identity: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: [str(k) for k in range(10)])
    #: pixel mean and standard deviation on the 0..1 scale, used to normalise batches
    mean: float = MEAN
    std: float = STD


class DataSource(Protocol):
    """Anything that loads the data a config's `data` section names."""

    def load(self, data: Any) -> DataArrays: ...


@dataclass
class ArraySource:
    """Data already in memory (tests, notebooks): the same arrays whatever the config says."""

    arrays: DataArrays

    def load(self, data: Any) -> DataArrays:
        return self.arrays


@dataclass
class FetchingSource:
    """MNIST from the cache (fetched from the mirrors and verified when missing), or a custom
    IDX folder. `data_dir` and `mirrors` come from the command line and win over (data_dir) or
    come before (mirrors) the config's; `progress` and `report` are cnncli.data's hooks."""

    data_dir: str | Path | None = None
    mirrors: Sequence[str] = ()
    progress: Any = None
    report: Any = None

    def load(self, data: Any) -> DataArrays:
        from cnncli.data import MNIST, load_idx_folder, load_mnist

        folder = self.data_dir if self.data_dir is not None else data.data_dir
        if data.dataset == "idx":
            if folder is None:
                raise ConfigError("data.dataset idx needs its folder: set data.data_dir or "
                                  "pass --data-dir")
            arrays = load_idx_folder(folder)
            files = {f.name: _sha256(Path(folder) / f.name) for f in MNIST.files}
            identity = {"dataset": "idx", "folder": str(Path(folder).resolve()), "files": files}
        else:
            arrays = load_mnist(folder, mirrors=[*self.mirrors, *data.mirrors],
                                progress=self.progress, report=self.report)
            identity = {"dataset": "mnist", "files": {f.name: f.sha256 for f in MNIST.files}}
        return DataArrays(arrays.train_images, arrays.train_labels, arrays.test_images,
                          arrays.test_labels, identity=identity)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
