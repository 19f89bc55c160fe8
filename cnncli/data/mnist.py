"""MNIST: where it lives, which mirrors serve it, how it is fetched, verified and cached.

The cache holds the four files decompressed (so loading is one read each). A file enters
the cache only after the SHA-256 of its decompressed bytes matches the pinned value: it
is streamed into a temporary file in the target folder and renamed into place atomically.
A small marker file (`verified.json`) remembers each verified file's size and mtime, so a
normal run does not rehash 47 MB; a file whose size or mtime changed is hashed again on
its first use in a process, and a mismatch says how to re-download.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

import numpy as np

from cnncli.data.idx import check_pair, inspect_idx, read_idx
from cnncli.errors import DataError

CHUNK = 1 << 16
MARKER = "verified.json"


class Progress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> object: ...


#: (description, total bytes or None) -> a progress sink; cli.py passes tqdm bars
ProgressFactory = Callable[[str, "int | None"], Progress]
#: receives one line per event worth telling (a file fetched, a mirror that failed); the CLI
#: echoes them to stderr, so a log shows what was fetched from where even without a terminal
Reporter = Callable[[str], None]


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name (as served, without .gz) and decompressed SHA-256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class DatasetDefinition:
    """Which files make a dataset, their pinned hashes, and the default mirrors."""

    name: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    mirrors: tuple[str, ...] = ()
    num_classes: int = 10

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


MNIST = DatasetDefinition(
    name="mnist",
    train_images=DataFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    train_labels=DataFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    test_images=DataFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    test_labels=DataFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)


@dataclass
class MnistArrays:
    """The four arrays, uint8: images (N, H, W), labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass
class FetchOptions:
    """Network knobs (tests make them tiny)."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)


# -- where data lives --------------------------------------------------------------------------

def user_cache_dir() -> Path:
    """The platform's per-user cache folder (XDG on Linux)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--data-dir, else $CNNCLI_DATA_DIR, else <user cache>/cnncli/mnist."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("CNNCLI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "cnncli" / "mnist"


def mirror_list(user: Iterable[str] = (), dataset: DatasetDefinition = MNIST) -> list[str]:
    """The user's mirrors, then $CNNCLI_MIRROR, then the dataset's own, without repeats."""
    out: list[str] = []
    env = os.environ.get("CNNCLI_MIRROR")
    for m in [*user, *([env] if env else []), *dataset.mirrors]:
        if m and m not in out:
            out.append(m)
    return out


# -- the verified marker -------------------------------------------------------------------------

def _read_marker(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_marker(folder: Path, marker: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".verified-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(marker, fh, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; like the data files, this is ordinary data
        os.replace(tmp, folder / MARKER)
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # the marker is only a cache: losing it is harmless


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_status(folder: Path, f: DataFile, marker: dict[str, Any] | None = None) -> str:
    """'missing', 'verified' (marker matches, no hashing), 'ok' (hashed now) or 'corrupt'."""
    path = folder / f.name
    if not path.is_file():
        return "missing"
    marker = _read_marker(folder) if marker is None else marker
    entry = marker.get(f.name)
    if entry == {**_stamp(path), "sha256": f.sha256}:
        return "verified"
    return "ok" if sha256_file(path) == f.sha256 else "corrupt"


# -- fetching ------------------------------------------------------------------------------------

def _session(opts: FetchOptions) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=opts.retries, connect=opts.retries, read=opts.retries,
                  status=opts.retries, backoff_factor=opts.backoff,
                  status_forcelist=(500, 502, 503, 504), allowed_methods=("GET",),
                  raise_on_status=False)
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _local_folder(mirror: str) -> Path | None:
    """A file:// URL or plain folder path -> the folder; None for http(s)."""
    parsed = urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise DataError(f"mirror {mirror!r}: unsupported scheme {parsed.scheme!r} "
                        "(use http://, https://, file:// or a folder path)")
    return Path(mirror).expanduser()


def _copy_stream(src: Any, dst: BinaryIO, total: int | None, desc: str,
                 progress: ProgressFactory | None) -> int:
    bar = progress(desc, total) if progress else None
    n = 0
    try:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
            n += len(chunk)
            if bar:
                bar.update(len(chunk))
    finally:
        if bar:
            bar.close()
    return n


class _RawReader:
    """A .read(n) over urllib3's raw response that never decodes Content-Encoding."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, n: int) -> bytes:
        return self._raw.read(n, decode_content=False)


def _fetch_raw(mirror: str, f: DataFile, dst: BinaryIO, session: Any, opts: FetchOptions,
               progress: ProgressFactory | None) -> bool:
    """Write the served file into dst; returns whether it is gzip-compressed."""
    folder = _local_folder(mirror)
    if folder is not None:
        for name, gz in ((f.name + ".gz", True), (f.name, False)):
            p = folder / name
            if p.is_file():
                with p.open("rb") as src:
                    _copy_stream(src, dst, p.stat().st_size, name, progress)
                return gz
        raise DataError(f"no {f.name}.gz or {f.name} in {folder}")
    import requests
    import urllib3

    url = mirror.rstrip("/") + "/" + f.name + ".gz"
    try:
        with session.get(url, stream=True,
                         timeout=(opts.connect_timeout, opts.read_timeout)) as resp:
            if resp.status_code != 200:
                raise DataError(f"HTTP {resp.status_code} for {url}")
            total = resp.headers.get("Content-Length")
            expected = int(total) if total and total.isdigit() else None
            # raw bytes as served: a server that labels the .gz Content-Encoding: gzip must
            # not have it decompressed here (we verify the decompressed IDX ourselves)
            n = _copy_stream(_RawReader(resp.raw), dst, expected, f.name + ".gz", progress)
            if expected is not None and n != expected:
                raise DataError(f"transfer cut short: {n} of {expected} bytes from {url}")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise DataError(f"{type(exc).__name__} for {url}") from None
    return True


def _decompress_and_hash(raw: Path, gz: bool, out: BinaryIO) -> str:
    h = hashlib.sha256()
    try:
        opener = gzip.open if gz else open
        with opener(raw, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"not a valid gzip file ({exc})") from None
    return h.hexdigest()


def fetch_file(folder: Path, f: DataFile, mirrors: Sequence[str], *,
               progress: ProgressFactory | None = None,
               opts: FetchOptions | None = None,
               report: Reporter | None = None) -> Path:
    """Fetch one file from the first mirror that serves it with the pinned hash.

    Temporary files live in `folder` and are removed on any failure; only a verified file
    is renamed into place. When every mirror fails, one DataError lists each and why.
    `report` hears of each mirror that failed and of the file once it is verified.
    """
    opts = opts or FetchOptions()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"data folder {folder}: cannot be created ({exc.strerror})") from None
    session = None
    failures = []
    for mirror in mirrors:
        raw_fd, raw_name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=folder)
        out_fd, out_name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".idx", dir=folder)
        raw, out = Path(raw_name), Path(out_name)
        try:
            if session is None and _local_folder(mirror) is None:
                session = _session(opts)
            with os.fdopen(raw_fd, "wb") as dst:
                gz = _fetch_raw(mirror, f, dst, session, opts, progress)
                fetched = dst.tell()
            with os.fdopen(out_fd, "wb") as dst:
                digest = _decompress_and_hash(raw, gz, dst)
                dst.flush()
                os.fsync(dst.fileno())
            if digest != f.sha256:
                raise DataError(
                    f"sha256 mismatch for {f.name}: expected {f.sha256[:12]}..., "
                    f"received {digest[:12]}..."
                )
            final = folder / f.name
            os.chmod(out, 0o644)  # mkstemp makes 0600; a cache file is ordinary data
            os.replace(out, final)
            marker = _read_marker(folder)
            marker[f.name] = {**_stamp(final), "sha256": f.sha256}
            _write_marker(folder, marker)
            if report:
                served = f.name + (".gz" if gz else "")
                report(f"fetched {served} ({fetched:,} bytes) from {mirror}; "
                       f"sha256 verified: {f.sha256[:12]}...")
            return final
        except DataError as exc:
            failures.append(f"{mirror}: {exc}")
            if report and mirror != mirrors[-1]:
                report(f"{f.name}: mirror {mirror} failed ({exc}); trying the next")
        finally:
            for p in (raw, out):
                p.unlink(missing_ok=True)
    listing = "; ".join(failures) if failures else "no mirrors given"
    raise DataError(f"could not fetch {f.name} from any mirror: {listing}")


def ensure_files(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = (),
    download: bool = True,
    force: bool = False,
    progress: ProgressFactory | None = None,
    dataset: DatasetDefinition = MNIST,
    opts: FetchOptions | None = None,
    report: Reporter | None = None,
) -> dict[str, Path]:
    """Make sure every file of the dataset is in the folder and verified; returns their paths.

    A cached, verified file means no network access at all.
    """
    folder = resolve_data_dir(data_dir)
    marker = _read_marker(folder)
    paths: dict[str, Path] = {}
    all_mirrors = mirror_list(mirrors, dataset)
    for f in dataset.files:
        status = "missing" if force else cached_status(folder, f, marker)
        if status == "ok":  # hashed now: remember it so the next run need not
            marker[f.name] = {**_stamp(folder / f.name), "sha256": f.sha256}
            _write_marker(folder, marker)
        elif status == "corrupt":
            raise DataError(
                f"cached {folder / f.name} does not match its pinned sha256 (corrupt or "
                f"changed); re-download it with: cnncli data download --force "
                f"--data-dir {folder}"
            )
        elif status == "missing":
            if not download:
                raise DataError(f"{folder / f.name} is missing; fetch it with: "
                                f"cnncli data download --data-dir {folder}")
            fetch_file(folder, f, all_mirrors, progress=progress, opts=opts, report=report)
            marker = _read_marker(folder)
        paths[f.name] = folder / f.name
    return paths


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = (),
    download: bool = True,
    progress: ProgressFactory | None = None,
    dataset: DatasetDefinition = MNIST,
    opts: FetchOptions | None = None,
    report: Reporter | None = None,
) -> MnistArrays:
    """All four arrays (uint8), fetching and verifying whatever is missing first."""
    paths = ensure_files(data_dir, mirrors=mirrors, download=download, progress=progress,
                         dataset=dataset, opts=opts, report=report)
    return _read_arrays(lambda f: paths[f.name], dataset)


def load_idx_folder(folder: str | os.PathLike[str], num_classes: int = 10) -> MnistArrays:
    """A folder of the four MNIST-named IDX files, uncompressed, of any image size.

    For custom IDX datasets: there are no published hashes to check, so the files are
    validated structurally (magic, dimensions, payload length, counts, label range).
    """
    root = Path(folder)
    custom = DatasetDefinition("custom", *(DataFile(f.name, "") for f in MNIST.files),
                               num_classes=num_classes)
    for f in custom.files:
        if not (root / f.name).is_file():
            raise DataError(f"{root / f.name} is missing (a custom IDX folder needs all four "
                            f"files: {', '.join(x.name for x in custom.files)})")
    return _read_arrays(lambda f: root / f.name, custom)


def _read_arrays(path_of: Callable[[DataFile], Path], ds: DatasetDefinition) -> MnistArrays:
    arrays = MnistArrays(
        read_idx(path_of(ds.train_images), "images"),
        read_idx(path_of(ds.train_labels), "labels"),
        read_idx(path_of(ds.test_images), "images"),
        read_idx(path_of(ds.test_labels), "labels"),
    )
    check_pair(arrays.train_images, arrays.train_labels, images_name=ds.train_images.name,
               labels_name=ds.train_labels.name, num_classes=ds.num_classes)
    check_pair(arrays.test_images, arrays.test_labels, images_name=ds.test_images.name,
               labels_name=ds.test_labels.name, num_classes=ds.num_classes)
    return arrays


def data_info(data_dir: str | os.PathLike[str] | None = None,
              dataset: DatasetDefinition = MNIST) -> tuple[Path, list[dict[str, Any]]]:
    """(folder, one row per file: name, status, size, items) without any network access."""
    folder = resolve_data_dir(data_dir)
    marker = _read_marker(folder)
    rows = []
    for f, kind in zip(dataset.files, ("images", "labels", "images", "labels"), strict=True):
        status = cached_status(folder, f, marker)
        row: dict[str, Any] = {"name": f.name, "status": status, "bytes": None, "shape": None}
        if status in ("verified", "ok"):
            row["bytes"] = (folder / f.name).stat().st_size
            row["shape"] = inspect_idx(folder / f.name, kind)  # the header only
        rows.append(row)
    return folder, rows

