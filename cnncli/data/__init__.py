"""Datasets: definitions (datasets.py), fetching and caching (fetch.py, with mirrors.py and
cache.py), IDX parsing and custom folders (idx.py), batches (batches.py)."""

from cnncli.data.datasets import (
    DATASETS,
    FASHION_MNIST,
    MNIST,
    DataFile,
    DataIdentity,
    DataInfo,
    DatasetArrays,
    DatasetDefinition,
    FileStatus,
    get_dataset,
    pixel_mean_std,
)
from cnncli.data.fetch import (
    FetchOptions,
    dataset_info,
    default_data_dir,
    ensure_files,
    load_dataset_files,
    load_mnist,
    resolve_data_dir,
)
from cnncli.data.idx import idx_folder_info, load_idx_folder
from cnncli.data.mirrors import Mirror, mirror_list, parse_mirror

#: the old name of DatasetArrays
MnistArrays = DatasetArrays

__all__ = [
    "DATASETS",
    "FASHION_MNIST",
    "MNIST",
    "DataFile",
    "DataIdentity",
    "DataInfo",
    "DatasetArrays",
    "DatasetDefinition",
    "FetchOptions",
    "FileStatus",
    "Mirror",
    "MnistArrays",
    "dataset_info",
    "default_data_dir",
    "ensure_files",
    "get_dataset",
    "idx_folder_info",
    "load_dataset_files",
    "load_idx_folder",
    "load_mnist",
    "mirror_list",
    "parse_mirror",
    "pixel_mean_std",
    "resolve_data_dir",
]
