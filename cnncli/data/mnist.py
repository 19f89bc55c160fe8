"""Transition shim: the names cli.py imports from here now live in fetch.py and datasets.py.

Remove once cli.py imports from cnncli.data (data_info's (folder, rows) form goes with it;
fetch.dataset_info returns a DataInfo with advice).
"""

from __future__ import annotations

import os
from typing import Any

from cnncli.data.datasets import MNIST, DatasetDefinition
from cnncli.data.fetch import dataset_info, ensure_files, load_mnist, resolve_data_dir

__all__ = ["data_info", "ensure_files", "load_mnist", "resolve_data_dir"]


def data_info(data_dir: str | os.PathLike[str] | None = None,
              dataset: DatasetDefinition = MNIST) -> tuple[Any, list[dict[str, Any]]]:
    """(folder, one row per file: name, status, bytes, shape, detail, path); see dataset_info."""
    info = dataset_info(data_dir, dataset)
    return info.folder, [f.to_dict() for f in info.files]
