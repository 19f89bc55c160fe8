"""The datasets cnncli can download by name: their files, pinned hashes, mirrors, classes.

Each file is pinned by the SHA-256 of its decompressed IDX bytes (a mirror may recompress,
the payload must not change) and by its exact decompressed size, which bounds how far a
download is inflated before it is refused. MNIST and Fashion-MNIST share file names and
sizes; only their content differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import ConfigError, DataError, quote


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as served (without .gz).

    sha256: of the decompressed bytes; size: decompressed bytes, exactly; kind: 'images'
    or 'labels'; gz_size: the canonical .gz's size, if known (it scales the download
    deadline; the size bound itself comes from `size`).
    """

    name: str
    sha256: str
    size: int
    kind: str
    gz_size: int | None = None


@dataclass(frozen=True)
class DatasetDefinition:
    """Which files make a dataset, where to fetch them, and how to show and normalise it.

    mean, std: the training images' pixel mean and standard deviation on the 0..1 scale.
    """

    name: str
    title: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    mean: float
    std: float

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_IMAGES_SIZE = {"train": 16 + 60000 * 28 * 28, "t10k": 16 + 10000 * 28 * 28}
_LABELS_SIZE = {"train": 8 + 60000, "t10k": 8 + 10000}


def _four(hashes: tuple[str, str, str, str],
          gz_sizes: tuple[int, int, int, int]) -> tuple[DataFile, ...]:
    """The four MNIST-layout files (train images/labels, test images/labels) with their pins."""
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    out = []
    for name, sha, gz in zip(names, hashes, gz_sizes, strict=True):
        split, kind = name.split("-")[0], name.split("-")[1]
        size = _IMAGES_SIZE[split] if kind == "images" else _LABELS_SIZE[split]
        out.append(DataFile(name, sha, size, kind, gz))
    return tuple(out)


MNIST = DatasetDefinition(
    "mnist", "MNIST",
    *_four(("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
           (9912422, 28881, 1648877, 4542)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    class_names=tuple(str(d) for d in range(10)),
    mean=0.1307,  # measured on the training images: 0.130660
    std=0.3081,  # 0.308108
)

# Zalando Research's Fashion-MNIST. Mirrors: the two download locations its README names,
# the S3 website and the data/fashion folder of github.com/zalandoresearch/fashion-mnist.
FASHION_MNIST = DatasetDefinition(
    "fashion-mnist", "Fashion-MNIST",
    *_four(("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
           (26421880, 29515, 4422102, 5148)),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    mean=0.2860,  # measured on the training images: 0.286041
    std=0.3530,  # 0.353024
)

#: every dataset cnncli downloads by name, keyed by the name a config uses
DATASETS: Mapping[str, DatasetDefinition] = {d.name: d for d in (MNIST, FASHION_MNIST)}


def get_dataset(name: str) -> DatasetDefinition:
    """The registered dataset called `name`; a ConfigError listing the known names if none."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown dataset {quote(name)} (known: "
                          f"{', '.join(sorted(DATASETS))}, or idx for a folder of your own "
                          "IDX files)") from None


def dataset_holding(sha256: str, name: str) -> DatasetDefinition | None:
    """The registered dataset whose file `name` has this SHA-256, if any."""
    for ds in DATASETS.values():
        if any(f.name == name and f.sha256 == sha256 for f in ds.files):
            return ds
    return None


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images (any shape) on the 0..1 scale.

    Counted through a 256-bin histogram, so no float copy of the images is made; exact up
    to float64 rounding.
    """
    if images.dtype != np.uint8 or images.size == 0:
        raise ValueError(f"pixel_mean_std: expected non-empty uint8 images, received "
                         f"{images.dtype} {images.shape}")
    counts = np.bincount(images.reshape(-1), minlength=256).astype(np.float64)  # (256,)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float(counts @ values / n)
    var = float(counts @ (values - mean) ** 2 / n)
    return mean, var ** 0.5


# -- what was loaded, and from what ---------------------------------------------------------------

#: the four files of every dataset, in this order: train images, train labels, test images,
#: test labels (MNIST's names; custom IDX folders use them too)
FILE_NAMES = tuple(f.name for f in MNIST.files)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DataIdentity:
    """Which data a run saw: what a checkpoint records, and what eval/resume compare.

    dataset: 'mnist', 'fashion-mnist' or 'idx'. files: each of FILE_NAMES -> the SHA-256 of
    its decompressed bytes (the pinned hashes for a registered dataset, computed while
    reading for an idx folder). folder: where an idx folder was (absolute), None for a
    registered dataset, whose location is the user's business, never the checkpoint's.
    """

    dataset: str
    files: Mapping[str, str]
    folder: str | None = None

    def same_data(self, other: DataIdentity) -> bool:
        """Same kind and the same bytes (wherever they are now)."""
        return self.dataset == other.dataset and dict(self.files) == dict(other.files)

    def describe(self) -> str:
        """One line for messages: 'MNIST' or 'idx folder /x (train-images sha256 ab12cd34ef56)'."""
        if self.dataset in DATASETS:
            return DATASETS[self.dataset].title
        sha = self.files.get(FILE_NAMES[0], "")[:12]
        return f"idx folder {self.folder} (train images sha256 {sha})"

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "files": dict(self.files), "folder": self.folder}

    @classmethod
    def from_dict(cls, data: Any) -> DataIdentity:
        """Back from to_dict(), every field checked (it comes from a file); DataError if not."""
        if not isinstance(data, dict) or set(data) != {"dataset", "files", "folder"}:
            raise DataError(f"data identity: expected keys dataset, files, folder, received "
                            f"{quote(data)}")
        dataset, files, folder = data["dataset"], data["files"], data["folder"]
        if dataset not in (*DATASETS, "idx"):
            raise DataError(f"data identity: unknown dataset {quote(dataset)}")
        if (not isinstance(files, dict) or set(files) != set(FILE_NAMES)
                or not all(isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values())):
            raise DataError(f"data identity: files must map {', '.join(FILE_NAMES)} to SHA-256 "
                            f"hex digests, received {quote(files)}")
        if not (folder is None or (isinstance(folder, str) and folder and "\x00" not in folder)):
            raise DataError(f"data identity: folder must be a path or null, received "
                            f"{quote(folder)}")
        if (dataset == "idx") != (folder is not None):
            raise DataError("data identity: an idx dataset records its folder, a registered "
                            f"one does not (received dataset {quote(dataset)}, folder "
                            f"{quote(folder)})")
        return cls(dataset, {n: files[n] for n in FILE_NAMES}, folder)


@dataclass
class DatasetArrays:
    """The four arrays of a dataset, what they are, and how to show and normalise them.

    train_images, test_images: uint8 (N, H, W); train_labels, test_labels: (N,) uint8
    (uint16 when an idx folder's label files are int16/int32). mean, std: the published
    normalisation (0..1 scale) of a registered dataset, None for an idx folder (compute it
    from the training split: `pixel_mean_std`). absent_classes: class numbers below
    num_classes that no training image has (an idx folder's labels may have gaps).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    identity: DataIdentity
    class_names: tuple[str, ...]
    mean: float | None = None
    std: float | None = None
    absent_classes: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


#: the file states that need nothing done (see FileStatus)
GOOD = ("verified", "ok")


@dataclass
class FileStatus:
    """One file of a data folder as `data info` shows it.

    status: 'verified' (the marker vouches for it, nothing hashed), 'ok' (checked now),
    'compressed' (only its .gz is there, verified; decompressed on first use), 'missing',
    'corrupt' (cnncli wrote it and it changed since), 'foreign' (not this dataset's, and
    cnncli did not write it), 'other-dataset' (another registered dataset's file),
    'not-a-file' (a FIFO, device or folder under that name), 'unreadable' (no permission,
    a symlink loop, an I/O error), 'invalid' (an idx file that fails validation).
    detail: one line saying what is wrong, empty when nothing is.
    """

    name: str
    status: str
    path: Path
    bytes: int | None = None
    shape: list[int] | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "path": str(self.path),
                "bytes": self.bytes, "shape": self.shape, "detail": self.detail}


@dataclass
class DataInfo:
    """What a data folder holds, for `cnncli data info`: no network access, nothing written.

    ok: every file is usable as it is; advice: one line saying what to do when not.
    """

    folder: Path
    dataset: str
    files: list[FileStatus] = field(default_factory=list)
    ok: bool = False
    advice: str | None = None

    @property
    def train_count(self) -> int | None:
        shape = self.files[0].shape if self.files else None
        return shape[0] if self.ok and shape else None

    @property
    def test_count(self) -> int | None:
        shape = self.files[2].shape if len(self.files) > 2 else None
        return shape[0] if self.ok and shape else None

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "dataset": self.dataset, "ok": self.ok,
                "advice": self.advice, "files": [f.to_dict() for f in self.files]}
