"""Datasets: MNIST download/verify/cache (mnist.py), IDX parsing (idx.py), batches."""

from cnncli.data.mnist import (
    MNIST,
    DataFile,
    DatasetDefinition,
    FetchOptions,
    MnistArrays,
    ensure_files,
    load_idx_folder,
    load_mnist,
    resolve_data_dir,
)

__all__ = [
    "MNIST",
    "DataFile",
    "DatasetDefinition",
    "FetchOptions",
    "MnistArrays",
    "ensure_files",
    "load_idx_folder",
    "load_mnist",
    "resolve_data_dir",
]
