"""A data folder's state: what each file is, which ones cnncli wrote, and its temporary files.

The marker (`verified.json`) records, per file cnncli verified, its size, mtime, inode and
SHA-256, and whether cnncli wrote it (downloaded it into place) or found it there. A file
whose record still matches is not hashed again; writing the marker is best-effort (a
read-only folder of verified data loads all the same, it is just hashed on every run).

Ownership decides what cnncli may replace: only files it wrote (the marker says so and the
inode is the one it wrote). A file that does not match the pinned hash and that cnncli did
not write is the user's: it is reported as not holding the dataset, never replaced.

cnncli's temporary files are named `.<file>.<host>-<pid>.<random>.<idx|tmp>`, so a later
run can tell whose they are; see `is_stale` for when one is removed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnncli.data.datasets import DataFile, DatasetDefinition, FileStatus, dataset_holding
from cnncli.data.idx import NotRegularFile, open_regular, stat_regular
from cnncli.errors import DataError

MARKER = "verified.json"
_MARKER_LIMIT = 1 << 20  # a marker is a few hundred bytes; anything past this is not ours


# -- the marker ----------------------------------------------------------------------------------

def read_marker(folder: Path) -> dict[str, Any]:
    """The marker's records by file name; {} when absent, unreadable or not cnncli's."""
    try:
        with open_regular(folder / MARKER) as fh:
            data = json.loads(fh.read(_MARKER_LIMIT + 1)[:_MARKER_LIMIT])
    except (DataError, OSError, ValueError, RecursionError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def write_marker(folder: Path, marker: dict[str, Any]) -> None:
    """Replace the marker atomically; best-effort: any failure (read-only folder, full disk)
    only means the files are hashed again next time."""
    tmp = None
    try:
        fd, tmp = create_temp(folder, MARKER, ".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(marker, fh, indent=1, sort_keys=True)
        os.replace(tmp, folder / MARKER)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            _unlink(tmp)


def record(st: os.stat_result, sha256: str, written: bool) -> dict[str, Any]:
    """The marker's record of a verified file."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "sha256": sha256,
            "written": written}


def _same_inode(entry: Any, st: os.stat_result) -> bool:
    return isinstance(entry, dict) and entry.get("ino") == st.st_ino


def vouches_for(entry: Any, st: os.stat_result, sha256: str) -> bool:
    """The record matches this file as it is now: no need to hash it."""
    return (_same_inode(entry, st) and entry.get("sha256") == sha256
            and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns)


def written_by_cnncli(entry: Any, st: os.stat_result) -> bool:
    """cnncli put this very file (same inode) into place, so it may replace it."""
    return _same_inode(entry, st) and entry.get("written") is True


# -- hashing -------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """SHA-256 of a regular file's bytes (a FIFO or device is refused, never read)."""
    h = hashlib.sha256()
    try:
        with open_regular(path) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    return h.hexdigest()


def sha256_gz(path: Path, limit: int) -> str | None:
    """SHA-256 of a .gz file's decompressed bytes, or None when it is not a valid gzip file
    or inflates past `limit` bytes (inflation stops there)."""
    h = hashlib.sha256()
    n = 0
    try:
        with open_regular(path) as fh, gzip.GzipFile(fileobj=fh, mode="rb") as gz:
            while chunk := gz.read(min(1 << 20, limit - n + 1)):
                n += len(chunk)
                if n > limit:
                    return None
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


# -- what a file in the folder is ----------------------------------------------------------------

def download_hint(dataset: DatasetDefinition, folder: Path, force: bool = False) -> str:
    """The command that fetches the dataset into the folder."""
    which = "" if dataset.name == "mnist" else f" --dataset {dataset.name}"
    return f"cnncli data download{which}{' --force' if force else ''} --data-dir {folder}"


def _not_ours(folder: Path, name: str, digest: str | None, dataset: DatasetDefinition,
              path: Path) -> FileStatus:
    """A file that is not the dataset's: another registered dataset's, or the user's own."""
    other = dataset_holding(digest, name.removesuffix(".gz")) if digest else None
    if other is not None and other.name != dataset.name:
        return FileStatus(name, "other-dataset", path, detail=(
            f"{folder} holds {other.title}'s {name}, not {dataset.title}'s: give "
            f"{dataset.title} a folder of its own (by default it uses "
            f"<user cache>/cnncli/{dataset.name})"))
    what = f"sha256 {digest[:12]}..." if digest else "not a valid gzip file of the right size"
    return FileStatus(name, "foreign", path, detail=(
        f"{folder} does not hold {dataset.title}: {name} is not {dataset.title}'s ({what}) and "
        f"cnncli did not write it, so it will not replace it; if these are your own IDX files, "
        f"use data: {{dataset: idx}} with this folder, else give {dataset.title} another "
        "--data-dir"))


def classify(folder: Path, f: DataFile, dataset: DatasetDefinition,
             marker: dict[str, Any]) -> FileStatus:
    """What folder/<f.name> is (see FileStatus.status); hashes it unless the marker vouches.

    Only its .gz there: hashed decompressed (never past f.size), 'compressed' if it is the
    dataset's. Nothing is written.
    """
    path = folder / f.name
    try:
        return _classify(folder, f, dataset, marker, path)
    except NotRegularFile as exc:
        return FileStatus(f.name, "not-a-file", path, detail=str(exc))
    except DataError as exc:  # a symlink loop, no permission, an I/O error
        return FileStatus(f.name, "unreadable", path, detail=str(exc))


def _classify(folder: Path, f: DataFile, dataset: DatasetDefinition, marker: dict[str, Any],
              path: Path) -> FileStatus:
    try:
        st = stat_regular(path)
        if st is None:
            gz = folder / f"{f.name}.gz"
            if stat_regular(gz) is None:
                return FileStatus(f.name, "missing", path, detail=(
                    f"{path} is missing; fetch it with: {download_hint(dataset, folder)}"))
            digest = sha256_gz(gz, f.size)
            if digest != f.sha256:
                return _not_ours(folder, gz.name, digest, dataset, gz)
            return FileStatus(gz.name, "compressed", gz, bytes=gz.stat().st_size)
    except FileNotFoundError:  # vanished between two looks: as if it was never there
        return FileStatus(f.name, "missing", path, detail=(
            f"{path} is missing; fetch it with: {download_hint(dataset, folder)}"))
    entry = marker.get(f.name)
    if vouches_for(entry, st, f.sha256):
        return FileStatus(f.name, "verified", path, bytes=st.st_size)
    digest = sha256_file(path)
    if digest == f.sha256:
        return FileStatus(f.name, "ok", path, bytes=st.st_size)
    if written_by_cnncli(entry, st) and entry.get("sha256") == f.sha256:
        return FileStatus(f.name, "corrupt", path, bytes=st.st_size, detail=(
            f"cached {path} does not match its pinned sha256 (corrupt or changed since cnncli "
            f"downloaded it); re-download it with: {download_hint(dataset, folder, True)}"))
    return _not_ours(folder, f.name, digest, dataset, path)


# -- temporary files: cnncli.files names them and tells stale ones -------------------------------

from cnncli.files import clean_stale_temps as _clean_stale_temps  # noqa: E402
from cnncli.files import create_temp  # noqa: E402,F401  (fetch.py names its temporaries so)


def clean_stale_temps(folder: Path, stems: Iterable[str]) -> list[str]:
    """Remove cnncli's stale temporary files of these stems (and the marker's) from folder."""
    return _clean_stale_temps(folder, {*stems, MARKER})


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- the folder itself ---------------------------------------------------------------------------

def make_folder(folder: Path) -> list[Path]:
    """Create folder and its missing parents; returns those created, outermost first."""
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"data folder {folder}: cannot be created ({exc.strerror})") from None
    return missing[::-1]


def remove_if_empty(created: list[Path]) -> None:
    """Undo make_folder where nothing was put: innermost first, stop at the first non-empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            return
