"""Where a run's images come from, as a parameter: a DataSource gives the four arrays of a
dataset and says what they are (their identity, class names, normalisation).

    source = FetchingSource(data_dir="/data/mnist", mirrors=("../shared/data/mnist",))
    arrays = source.load(config.run.data)                  # fetched and verified if needed
    arrays = source.load(config.run.data, expected=ident)  # a checkpoint's data, checked

Training from a config may use the locations the config names (data_dir, mirrors): the user
wrote them. A checkpoint's data is loaded by its identity only: the folder and mirrors come
from this command (--data-dir, --mirror), the environment and the defaults, never from the
checkpoint, and an idx run's recorded folder is used only to find files whose hashes then
must match. Tests and library users hand the trainer an ArraySource of arrays they made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cnncli.data.datasets import DataIdentity, DatasetArrays, get_dataset
from cnncli.data.idx import encode_idx
from cnncli.errors import ConfigError, DataError


class DataSource(Protocol):
    """Anything that loads the data a config's `data` section names."""

    def load(self, data: Any, expected: DataIdentity | None = None) -> DatasetArrays:
        """The arrays; with `expected` (a checkpoint's record), only those very data."""
        ...


def memory_identity(arrays: Sequence[np.ndarray]) -> DataIdentity:
    """An identity for arrays made in memory: the hashes of their IDX encodings."""
    from cnncli.data.datasets import FILE_NAMES

    files = {name: hashlib.sha256(encode_idx(a)).hexdigest()
             for name, a in zip(FILE_NAMES, arrays, strict=True)}
    return DataIdentity("idx", files, "(in memory)")


@dataclass
class ArraySource:
    """Data already in memory (tests, notebooks): the same arrays whatever the config says."""

    arrays: DatasetArrays

    @classmethod
    def of(cls, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
           test_labels: np.ndarray, class_names: Sequence[str] | None = None) -> ArraySource:
        """uint8 images (N, H, W) and labels (N,) -> a source; classes '0'.. by default."""
        parts = (train_images, train_labels, test_images, test_labels)
        k = int(max(train_labels.max(), test_labels.max())) + 1
        names = tuple(class_names) if class_names is not None else tuple(map(str, range(k)))
        return cls(DatasetArrays(*parts, identity=memory_identity(parts), class_names=names))

    def load(self, data: Any, expected: DataIdentity | None = None) -> DatasetArrays:
        if expected is not None and not self.arrays.identity.same_data(expected):
            raise DataError(f"these arrays are not the data the run was trained on "
                            f"({expected.describe()})")
        return self.arrays


@dataclass
class FetchingSource:
    """A registered dataset from its cache (fetched from the mirrors and verified when
    missing), or an idx folder. `data_dir` and `mirrors` are this command's (--data-dir,
    --mirror); `progress` and `report` are cnncli.data's hooks. `notes` collects what the
    user should hear (e.g. that the data scored is not the run's own)."""

    data_dir: str | Path | None = None
    mirrors: Sequence[str] = ()
    progress: Any = None
    report: Any = None
    notes: list[str] = field(default_factory=list)

    def load(self, data: Any, expected: DataIdentity | None = None) -> DatasetArrays:
        from cnncli.data import load_dataset_files, load_idx_folder

        mine = expected is None  # the config is the user's own: its locations count
        folder = self.data_dir
        if folder is None:
            folder = data.data_dir if mine else (expected.folder if data.dataset == "idx"
                                                 else None)
        mirrors = [*self.mirrors, *(data.mirrors if mine else [])]
        if data.dataset == "idx":
            if folder is None:
                raise ConfigError("data.dataset idx needs its folder: set data.data_dir or "
                                  "pass --data-dir")
            try:
                arrays = load_idx_folder(folder, data.classes)
            except DataError as exc:
                if mine or self.data_dir is not None:
                    raise
                raise DataError(f"{exc}; it is the run's data folder as the checkpoint "
                                "recorded it: pass --data-dir with where those files are "
                                "now") from None
        else:
            arrays = load_dataset_files(get_dataset(data.dataset), folder, mirrors=mirrors,
                                        progress=self.progress, report=self.report)
        if expected is not None and not arrays.identity.same_data(expected):
            found = arrays.identity.describe()
            if self.data_dir is None:
                raise DataError(f"the data found ({found}) is not the data the run was "
                                f"trained on ({expected.describe()}); pass --data-dir to use "
                                "other data on purpose")
            self.notes.append(f"note: using {found}, not the run's own data "
                              f"({expected.describe()})")
        return arrays
