"""Fetch, verify and cache a registered dataset (MNIST, Fashion-MNIST) in a data folder.

The cache holds the four files decompressed (so loading is one read each). A file enters
it only after the SHA-256 of its decompressed bytes matches the pinned value: the served
bytes are inflated as they arrive into a temporary file in the folder, which is renamed
into place once verified. Nothing a mirror sends is trusted further than the definition
allows: a body past the largest size any gzip of the file can take, a gzip that inflates
past the file's exact size, or a transfer slower than the file's deadline is cut off and
the next mirror tried. A mirror that cannot be reached is not asked again for the other
files. Which files cnncli may replace, and how stale temporary files are told apart, is
in cache.py.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from cnncli.data import cache
from cnncli.data.datasets import (
    GOOD,
    MNIST,
    DataFile,
    DataIdentity,
    DataInfo,
    DatasetArrays,
    DatasetDefinition,
)
from cnncli.data.idx import (
    check_pair,
    inspect_idx,
    open_regular,
    peek_header,
    read_idx,
    stat_regular,
)
from cnncli.data.mirrors import Mirror, describe_network_error, mirror_list, parse_mirror
from cnncli.errors import DataError
from cnncli.paths import dataset_dir

CHUNK = 1 << 16


class Progress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> object: ...


#: (description, total bytes or None) -> a progress sink; the CLI passes tqdm bars
ProgressFactory = Callable[[str, "int | None"], Progress]
#: receives one line per event worth telling (a file fetched, a mirror that failed); the CLI
#: echoes them to stderr, so a log shows what was fetched from where even without a terminal
Reporter = Callable[[str], None]


@dataclass
class FetchOptions:
    """Network knobs (tests make them tiny).

    A file's deadline, from the request to its last byte, is its expected compressed size
    at `min_rate` bytes/s, never less than `min_deadline` seconds: MNIST's 9.9 MB training
    images get 151 s, Fashion-MNIST's 26 MB 403 s, small files 60 s.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3  # HTTP 5xx answers, with backoff
    connect_retries: int = 1  # a refused or timed-out connection: once more, then next mirror
    backoff: float = 0.5
    min_rate: float = 64 * 1024.0
    min_deadline: float = 60.0


# -- where data lives --------------------------------------------------------------------------

def default_data_dir(dataset: DatasetDefinition = MNIST) -> Path:
    """data_root()/<dataset name>, e.g. ~/.cache/cnncli/fashion-mnist (see cnncli.paths)."""
    return dataset_dir(dataset.name)


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None,
                     dataset: DatasetDefinition = MNIST) -> Path:
    """--data-dir, else $CNNCLI_DATA_DIR/<dataset>, else <user cache>/cnncli/<dataset>."""
    return dataset_dir(dataset.name, explicit)


# -- limits ------------------------------------------------------------------------------------

def compressed_bound(f: DataFile) -> int:
    """The most bytes a faithful mirror can send for f.name.gz.

    Deflate's worst case is stored blocks, 5 bytes per 65,535 of data, so any gzip of the
    file (recompressed, or not compressed at all) is below size + size/1000 + 64 KiB (room
    for a gzip header's name and comment). MNIST's training images: at most 47.1 MB,
    where 9.9 MB are expected.
    """
    return f.size + f.size // 1000 + (64 << 10)


def file_deadline(f: DataFile, announced: int | None, opts: FetchOptions) -> float:
    """Seconds allowed for fetching f, from its expected (or announced) compressed size."""
    expected = max(announced or 0, f.gz_size or 0) or f.size
    return max(opts.min_deadline, expected / opts.min_rate)


# -- one fetch ---------------------------------------------------------------------------------

class _MirrorFailed(Exception):
    """This mirror cannot give this file; `unreachable` ones are skipped for later files."""

    def __init__(self, reason: str, *, unreachable: bool = False, network: bool = False):
        super().__init__(reason)
        self.reason, self.unreachable = reason, unreachable
        self.network = network or unreachable


class _WriteFailed(Exception):
    """Writing into the data folder failed (full disk, read-only): no mirror can help."""


class _Source:
    """A file-like .read(n) over what a mirror serves: counts bytes, refuses more than
    `bound`, trips the deadline, feeds the progress bar.

    read(n) returns n bytes unless the body ends (gzip's header parsing needs whole reads),
    gathered from read1 calls that return as soon as any bytes arrive, so a mirror
    dripping a byte at a time still meets the deadline check between them.
    """

    def __init__(self, read1: Callable[[int], bytes], label: str, bound: int,
                 deadline: float, start: float, announced: int | None,
                 bar: Progress | None) -> None:
        self._read1, self.label, self.bound = read1, label, bound
        self.deadline, self.start, self.announced, self.bar = deadline, start, announced, bar
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        want = CHUNK if n is None or n < 0 else n
        parts, got = [], 0
        while got < want:
            data = self._next(min(want - got, CHUNK))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _next(self, want: int) -> bytes:
        import http.client

        import urllib3

        try:
            data = self._read1(want)
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            raise _MirrorFailed(describe_network_error(exc), network=True) from None
        self.n += len(data)
        if self.n > self.bound:
            raise _MirrorFailed(f"sent more than {self.bound:,} bytes for {self.label}, more "
                                "than any gzip of it can take; stopped")
        elapsed = time.monotonic() - self.start
        if elapsed > self.deadline:
            raise _MirrorFailed(f"stalled: {self.n:,} bytes of {self.label} in {elapsed:.0f} s, "
                                f"past this file's {self.deadline:.0f} s deadline", network=True)
        if not data and self.announced is not None and self.n != self.announced:
            raise _MirrorFailed(f"transfer cut short: {self.n} of {self.announced} bytes",
                                network=True)
        if self.bar is not None:
            self.bar.update(len(data))
        return data


def _session(opts: FetchOptions) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=opts.retries + opts.connect_retries, connect=opts.connect_retries,
                  read=0, other=0, status=opts.retries, backoff_factor=opts.backoff,
                  status_forcelist=(500, 502, 503, 504), allowed_methods=("GET",),
                  raise_on_status=False)
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _open_folder(mirror: Mirror, f: DataFile) -> tuple[BinaryIO, str, bool, int]:
    """(open file, served name, gzip?, size) from a folder mirror: name.gz, else name."""
    assert mirror.folder is not None
    for name, gz in ((f"{f.name}.gz", True), (f.name, False)):
        p = mirror.folder / name
        try:
            if stat_regular(p) is None:
                continue
            fh = open_regular(p)
        except DataError as exc:
            raise _MirrorFailed(str(exc)) from None
        size = os.fstat(fh.fileno()).st_size
        limit = compressed_bound(f) if gz else f.size
        if size > limit or (not gz and size != f.size):
            fh.close()
            raise _MirrorFailed(f"{p} is {size:,} bytes; {f.name}"
                                f"{'.gz can be at most' if gz else ' is'} {limit:,}")
        return fh, name, gz, size
    raise _MirrorFailed(f"no {f.name}.gz or {f.name} in {mirror.folder}")


def _open_http(mirror: Mirror, f: DataFile, session: Any, opts: FetchOptions) -> tuple[Any, str]:
    """The streaming response for <url><name>.gz, status 200, size announced within bounds."""
    import requests
    import urllib3

    url = f"{mirror.url}{f.name}.gz"
    try:
        resp = session.get(url, stream=True, timeout=(opts.connect_timeout, opts.read_timeout),
                           headers={"Accept-Encoding": "identity"})  # the .gz, not re-encoded
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _MirrorFailed(describe_network_error(exc), unreachable=True) from None
    if resp.status_code != 200:
        resp.close()
        raise _MirrorFailed(f"HTTP {resp.status_code} for {url}")
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > compressed_bound(f):
        resp.close()
        raise _MirrorFailed(f"announces {int(length):,} bytes for {f.name}.gz, more than the "
                            f"{compressed_bound(f):,} any gzip of it can take")
    return resp, url


def _write(fd: int, data: bytes, target: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise _WriteFailed(f"cannot write {target} ({exc.strerror})") from None


def _gunzip(src: _Source, limit: int, sink: Callable[[bytes], None]) -> None:
    """Inflate the gzip members read from src into sink, never more than `limit` bytes.

    As gzip.GzipFile reads it (members concatenated, zero padding after one), but in zlib's
    C loop: GzipFile skips padding a byte per Python call, which a mirror sending endless
    zeros turns into minutes of CPU. zlib checks each member's CRC-32 and length.
    """
    d = zlib.decompressobj(31)  # 16 + 15: a gzip wrapper around a 32 KiB-window deflate
    n = 0
    data = b""
    while True:
        if not data:
            data = src.read(CHUNK)
            if not data:
                break
        if d.eof:  # between members: zero padding may follow, else another member
            data = data.lstrip(b"\0")
            if not data:
                continue
            d = zlib.decompressobj(31)
        out = d.decompress(data, limit - n + 1)
        data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
        n += len(out)
        if n > limit:
            raise _MirrorFailed(f"decompresses past its {limit:,} bytes (a gzip bomb or another "
                                "file); stopped before the hash check")
        if out:
            sink(out)
    if not d.eof:
        raise _MirrorFailed("not a valid gzip file (it ends inside a compressed block)")


def _inflate(src: _Source, gz: bool, fd: int, f: DataFile, target: Path) -> str:
    """Decompress (or copy) src into fd, never past f.size bytes; returns their SHA-256."""
    h = hashlib.sha256()

    def sink(chunk: bytes) -> None:
        h.update(chunk)
        _write(fd, chunk, target)

    try:
        if gz:
            _gunzip(src, f.size, sink)
        else:
            while chunk := src.read(1 << 20):
                sink(chunk)  # src is bounded to f.size for raw files
    except zlib.error as exc:
        raise _MirrorFailed(f"not a valid gzip file ({exc})") from None
    except _MirrorFailed as exc:
        if exc.reason.startswith("decompresses past"):
            exc.reason = f"{f.name} {exc.reason}"
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        raise _WriteFailed(f"cannot write {target} ({exc.strerror})") from None
    return h.hexdigest()


def _fetch_from(mirror: Mirror, folder: Path, f: DataFile, session: Any, opts: FetchOptions,
                progress: ProgressFactory | None) -> tuple[Path, str, int, str]:
    """Fetch f from one mirror into a temporary file: (temp path, sha256, bytes, served)."""
    start = time.monotonic()
    if mirror.url is not None:
        resp, _ = _open_http(mirror, f, session, opts)
        length = resp.headers.get("Content-Length", "")
        announced = int(length) if length.isdigit() else None
        closer: Any = resp

        def reader(n: int) -> bytes:
            return resp.raw.read1(n, decode_content=False)  # the .gz as served, not decoded

        served, gz, deadline = f"{f.name}.gz", True, file_deadline(f, announced, opts)
    else:
        fh, served, gz, announced = _open_folder(mirror, f)
        closer, reader, deadline = fh, fh.read, math.inf
    bar = progress(served, announced) if progress else None
    tmp = None
    try:
        try:
            fd, tmp = cache.create_temp(folder, f.name, ".idx")
        except OSError as exc:
            raise _WriteFailed(f"cannot write {folder / f.name} ({exc.strerror})") from None
        src = _Source(reader, served, compressed_bound(f) if gz else f.size, deadline, start,
                      announced, bar)
        try:
            digest = _inflate(src, gz, fd, f, folder / f.name)
        finally:
            os.close(fd)
        done, tmp = tmp, None
        return done, digest, src.n, served
    finally:
        if tmp is not None:
            cache._unlink(tmp)
        if bar is not None:
            bar.close()
        closer.close()


def fetch_file(folder: Path, f: DataFile, mirrors: Sequence[str | Mirror], *,
               progress: ProgressFactory | None = None,
               opts: FetchOptions | None = None,
               report: Reporter | None = None,
               unreachable: set[str] | None = None) -> Path:
    """Fetch one file from the first mirror that serves it with the pinned hash.

    Temporary files live in `folder` and are removed on any failure; only a verified file
    is renamed into place (and recorded in the marker as written by cnncli). When every
    mirror fails, one DataError lists each and why; a failure to write (full disk) ends it
    at once, naming the file. `unreachable` collects mirrors that could not be reached, and
    skips them (pass the same set for the files of one dataset). `report` hears of each
    mirror that failed and of the file once it is verified.
    """
    opts = opts or FetchOptions()
    parsed = [m if isinstance(m, Mirror) else parse_mirror(m) for m in mirrors]
    unreachable = set() if unreachable is None else unreachable
    failures: list[str] = []
    network = False
    session = None
    try:
        for i, mirror in enumerate(parsed):
            if mirror.spec in unreachable:
                failures.append(f"{mirror.spec}: skipped, unreachable for an earlier file")
                continue
            try:
                if mirror.url is not None and session is None:
                    session = _session(opts)
                tmp, digest, fetched, served = _fetch_from(mirror, folder, f, session, opts,
                                                           progress)
                return _install(tmp, digest, folder, f, mirror, fetched, served, report)
            except _MirrorFailed as exc:
                failures.append(f"{mirror.spec}: {exc.reason}")
                network |= exc.network
                if exc.unreachable:
                    unreachable.add(mirror.spec)
                if report and i < len(parsed) - 1:
                    report(f"{f.name}: mirror {mirror.spec} failed ({exc.reason}); trying the "
                           "next")
            except _WriteFailed as exc:
                raise DataError(str(exc)) from None
    finally:
        if session is not None:
            session.close()
    listing = "; ".join(failures) if failures else "no mirrors given"
    hint = "; try another mirror with --mirror URL (or a folder holding the files)" if network \
        else ""
    raise DataError(f"could not fetch {f.name} from any mirror: {listing}{hint}")


def _install(tmp: Path, digest: str, folder: Path, f: DataFile, mirror: Mirror, fetched: int,
             served: str, report: Reporter | None) -> Path:
    """Rename a verified temporary file into place and record it; the temp is gone after."""
    final = folder / f.name
    try:
        if digest != f.sha256:
            raise _MirrorFailed(f"sha256 mismatch for {f.name}: expected {f.sha256[:12]}..., "
                                f"received {digest[:12]}...")
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise _WriteFailed(f"cannot write {final} ({exc.strerror})") from None
    finally:
        cache._unlink(tmp)
    marker = cache.read_marker(folder)
    marker[f.name] = cache.record(final.stat(), f.sha256, written=True)
    cache.write_marker(folder, marker)
    if report:
        report(f"fetched {served} ({fetched:,} bytes) from {mirror.spec}; "
               f"sha256 verified: {f.sha256[:12]}...")
    return final


# -- a whole dataset ---------------------------------------------------------------------------

_REFUSED = ("not-a-file", "unreadable", "foreign", "other-dataset")


def ensure_files(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str | Mirror] = (),
    download: bool = True,
    force: bool = False,
    progress: ProgressFactory | None = None,
    dataset: DatasetDefinition = MNIST,
    opts: FetchOptions | None = None,
    report: Reporter | None = None,
) -> dict[str, Path]:
    """Make sure every file of the dataset is in the folder and verified; returns their paths.

    A cached, verified file means no network access and no write (a read-only folder of
    verified data is fine). A file only present as .gz is verified and decompressed from
    the folder itself. Files cnncli did not write are never replaced, not even with
    `force` (which fetches again only what cnncli wrote): one that is not the dataset's is
    a DataError saying the folder does not hold it. Stale temporary files of cnncli's in the
    folder are removed first. A folder created here and left empty by a failure is removed.
    """
    folder = resolve_data_dir(data_dir, dataset)
    all_mirrors = mirror_list(mirrors, dataset)  # a malformed one fails before anything else
    cache.clean_stale_temps(folder, [f.name for f in dataset.files])
    marker = cache.read_marker(folder)
    created: list[Path] | None = None
    unreachable: set[str] = set()
    paths: dict[str, Path] = {}
    states = [cache.classify(folder, f, dataset, marker) for f in dataset.files]
    for s in (*(s for s in states if s.status in _REFUSED),
              *(s for s in states if s.status == "corrupt" and not force)):
        raise DataError(s.detail)  # the most serious first: never fetch beside foreign files
    try:
        for f, s in zip(dataset.files, states, strict=True):
            path = folder / f.name
            if s.status in GOOD:
                st = path.stat()
                ours = cache.written_by_cnncli(marker.get(f.name), st)
                if s.status == "ok":  # hashed now: remember it so the next run need not
                    marker[f.name] = cache.record(st, f.sha256, written=ours)
                    cache.write_marker(folder, marker)
                if not (force and ours):
                    if force and report:
                        report(f"kept {path}: it verifies, and cnncli did not write it")
                    paths[f.name] = path
                    continue
            if s.status == "compressed":
                sources: list[Mirror] = [Mirror(str(folder), folder=folder)]
            elif not download:
                raise DataError(s.detail or f"{path} is missing; fetch it with: "
                                f"{cache.download_hint(dataset, folder)}")
            else:
                sources = all_mirrors
            if created is None:
                created = cache.make_folder(folder)
            paths[f.name] = fetch_file(folder, f, sources, progress=progress, opts=opts,
                                       report=report, unreachable=unreachable)
            marker = cache.read_marker(folder)
    except BaseException:
        cache.remove_if_empty(created or [])
        raise
    return paths


def load_dataset_files(
    dataset: DatasetDefinition = MNIST,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str | Mirror] = (),
    download: bool = True,
    force: bool = False,
    progress: ProgressFactory | None = None,
    opts: FetchOptions | None = None,
    report: Reporter | None = None,
) -> DatasetArrays:
    """A registered dataset's four arrays, fetched and verified first if needed.

    The result's identity names the dataset and its pinned hashes (no folder: where a
    registered dataset lives is the user's choice), its class names and published mean/std.
    """
    paths = ensure_files(data_dir, mirrors=mirrors, download=download, force=force,
                         progress=progress, dataset=dataset, opts=opts, report=report)
    arrays = [read_idx(paths[f.name], f.kind) for f in dataset.files]
    for i in (0, 2):
        check_pair(arrays[i], arrays[i + 1], images_name=dataset.files[i].name,
                   labels_name=dataset.files[i + 1].name, num_classes=dataset.num_classes)
    identity = DataIdentity(dataset.name, {f.name: f.sha256 for f in dataset.files})
    return DatasetArrays(*arrays, identity=identity, class_names=dataset.class_names,
                         mean=dataset.mean, std=dataset.std)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str | Mirror] = (),
    download: bool = True,
    progress: ProgressFactory | None = None,
    dataset: DatasetDefinition = MNIST,
    opts: FetchOptions | None = None,
    report: Reporter | None = None,
) -> DatasetArrays:
    """load_dataset_files with MNIST by default (the signature main's callers use)."""
    return load_dataset_files(dataset, data_dir, mirrors=mirrors, download=download,
                              progress=progress, opts=opts, report=report)


def dataset_info(data_dir: str | os.PathLike[str] | None = None,
                 dataset: DatasetDefinition = MNIST) -> DataInfo:
    """What the folder holds of the dataset, without network access and without writing.

    Files are hashed unless the marker vouches for them; `advice` is one line saying what
    to do when anything is not usable as it is (never to overwrite files cnncli did not
    write).
    """
    folder = resolve_data_dir(data_dir, dataset)
    marker = cache.read_marker(folder)
    info = DataInfo(folder, dataset.name)
    for f in dataset.files:
        row = cache.classify(folder, f, dataset, marker)
        try:  # headers only: a verified file's payload is known good
            if row.status in GOOD:
                row.shape = inspect_idx(row.path, f.kind)
            elif row.status == "compressed":
                row.shape = list(peek_header(row.path, f.kind).dims)
        except DataError as exc:  # a pinned file always parses; a race replaced it
            row.status, row.detail = "invalid", str(exc)
        info.files.append(row)
    usable = (*GOOD, "compressed")
    info.ok = all(r.status in usable for r in info.files)
    bad = [r for r in info.files if r.status not in usable]
    if bad:
        worst = next((r for r in bad if r.status in _REFUSED), None) or \
            next((r for r in bad if r.status == "corrupt"), None)
        info.advice = worst.detail if worst else (
            f"fetch what is missing with: {cache.download_hint(dataset, folder)}")
    elif any(r.status == "compressed" for r in info.files):
        info.advice = "the .gz files verify; they are decompressed on first use"
    return info
