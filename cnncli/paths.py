"""Where cnncli keeps data by default. Standard library only, so the CLI's help can show the
real folder without importing NumPy.

    data_root()            $CNNCLI_DATA_DIR, else <user cache>/cnncli
    data_root() / "mnist"  MNIST's cache; each registered dataset has its own folder
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def user_cache_dir() -> Path:
    """The platform's per-user cache folder ($XDG_CACHE_HOME or ~/.cache on Linux)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def data_root() -> Path:
    """The folder holding one cache folder per registered dataset: $CNNCLI_DATA_DIR, else
    <user cache>/cnncli."""
    env = os.environ.get("CNNCLI_DATA_DIR")
    return Path(env).expanduser() if env else user_cache_dir() / "cnncli"


def dataset_dir(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """A registered dataset's folder: `explicit` (--data-dir) if given, else data_root()/name."""
    if explicit:
        return Path(explicit).expanduser()
    return data_root() / name
