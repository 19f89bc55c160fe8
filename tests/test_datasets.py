"""data/datasets.py: the registered datasets, their published normalisation checked against
the real files, and the data identity a checkpoint records."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from fetch_helpers import shared_data

from cnncli.data.datasets import (
    DATASETS,
    FASHION_MNIST,
    FILE_NAMES,
    MNIST,
    DataIdentity,
    dataset_holding,
    get_dataset,
    pixel_mean_std,
)
from cnncli.errors import ConfigError, DataError


def test_registry_names_mnist_and_fashion_mnist() -> None:
    assert sorted(DATASETS) == ["fashion-mnist", "mnist"]
    assert get_dataset("fashion-mnist") is FASHION_MNIST
    with pytest.raises(ConfigError, match=r"unknown dataset 'fashion' \(known: fashion-mnist, "
                       r"mnist, or idx for a folder of your own IDX files\)"):
        get_dataset("fashion")


def test_fashion_mnist_definition() -> None:
    assert FASHION_MNIST.mirrors[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert FASHION_MNIST.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert (FASHION_MNIST.mean, FASHION_MNIST.std) == (0.2860, 0.3530)
    assert [f.name for f in FASHION_MNIST.files] == list(FILE_NAMES)


def test_mnist_and_fashion_mnist_files_have_mnists_sizes() -> None:
    # 60000 or 10000 items: 28x28 images after a 16-byte header, labels after an 8-byte one
    sizes = [47040016, 60008, 7840016, 10008]
    for ds in (MNIST, FASHION_MNIST):
        assert [f.size for f in ds.files] == sizes
        assert [f.kind for f in ds.files] == ["images", "labels", "images", "labels"]
    assert MNIST.class_names == tuple("0123456789") and MNIST.num_classes == 10


def test_dataset_holding_finds_a_file_by_its_hash() -> None:
    assert dataset_holding(MNIST.test_labels.sha256, "t10k-labels-idx1-ubyte") is MNIST
    assert dataset_holding(FASHION_MNIST.train_images.sha256,
                           "train-images-idx3-ubyte") is FASHION_MNIST
    assert dataset_holding(MNIST.test_labels.sha256, "train-labels-idx1-ubyte") is None


def test_pixel_mean_std_hand_worked() -> None:
    # pixels 0 and 255 -> 0.0 and 1.0: mean 0.5, std 0.5; 0, 51, 102 -> 0, 0.2, 0.4
    assert pixel_mean_std(np.array([[0, 255]], np.uint8)) == pytest.approx((0.5, 0.5))
    mean, std = pixel_mean_std(np.array([0, 51, 102], np.uint8).reshape(1, 1, 3))
    assert mean == pytest.approx(0.2) and std == pytest.approx((0.08 / 3) ** 0.5)
    with pytest.raises(ValueError, match="expected non-empty uint8 images"):
        pixel_mean_std(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("ds", [MNIST, FASHION_MNIST], ids=lambda d: d.name)
def test_published_mean_and_std_match_the_training_images(ds: object) -> None:
    folder = shared_data(ds.name)  # type: ignore[attr-defined]
    path = folder / "train-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"real {ds.name} not found at {folder} (only this workplace has it)")  # type: ignore[attr-defined]
    raw = gzip.decompress(path.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == ds.train_images.sha256  # type: ignore[attr-defined]
    mean, std = pixel_mean_std(np.frombuffer(raw, np.uint8, offset=16))
    # the published figures are these, rounded to 4 decimals (mnist 0.130660 / 0.308108,
    # fashion-mnist 0.286041 / 0.353024)
    assert abs(mean - ds.mean) < 5e-5 and abs(std - ds.std) < 5e-5  # type: ignore[attr-defined]


def test_identity_round_trips_and_compares_by_content() -> None:
    files = {n: f"{i:064x}" for i, n in enumerate(FILE_NAMES)}
    a = DataIdentity("idx", files, "/data/a")
    assert DataIdentity.from_dict(a.to_dict()) == a
    assert a.same_data(DataIdentity("idx", dict(files), "/elsewhere"))
    assert not a.same_data(DataIdentity("idx", {**files, FILE_NAMES[3]: "f" * 64}, "/data/a"))
    m = DataIdentity("mnist", {f.name: f.sha256 for f in MNIST.files})
    assert m.describe() == "MNIST" and DataIdentity.from_dict(m.to_dict()) == m
    assert a.describe() == f"idx folder /data/a (train images sha256 {'0' * 12})"


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected keys dataset, files, folder"),
    ({"dataset": "cifar", "files": {}, "folder": None}, "unknown dataset 'cifar'"),
    ({"dataset": "idx", "files": {"a": "b"}, "folder": "/x"}, "files must map"),
    ({"dataset": "mnist", "files": {f.name: f.sha256 for f in MNIST.files}, "folder": "/x"},
     "a registered one does not"),
    ({"dataset": "idx", "files": {n: "0" * 64 for n in FILE_NAMES}, "folder": None},
     "an idx dataset records its folder"),
])
def test_identity_from_a_damaged_record_is_one_data_error(data: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        DataIdentity.from_dict(data)
