"""IDX files (the MNIST container format): parse and validate, never trust a header.

Layout: a 4-byte magic (0x00 0x00, element type, number of dimensions), then one big-endian
uint32 per dimension, then the payload in C order. MNIST uses element type 0x08 (unsigned
byte): images have magic 2051 (0x00000803: 3 dims N, H, W), labels 2049 (0x00000801: N).
Labels may also be big-endian int16 (0x0B) or int32 (0x0C), for datasets of over 256 classes.

Reading is header first: a file's declared size is checked against its real size (and
against the machine's memory) before any payload is read, a `.gz` file is inflated no
further than its header declares, and only regular files are opened (a FIFO or a device
in a data folder is refused by its type, never read).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnncli.data.datasets import FILE_NAMES, DataIdentity, DataInfo, DatasetArrays, FileStatus
from cnncli.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}
_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
          0x0D: "float32", 0x0E: "float64"}
_DTYPES = {0x08: np.dtype(">u1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4")}
_ALLOWED = {"images": (0x08,), "labels": (0x08, 0x0B, 0x0C)}
_ALLOWED_TEXT = {"images": "only unsigned bytes (0x08)",
                 "labels": "only unsigned bytes (0x08), int16 (0x0B) or int32 (0x0C)"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class IdxHeader:
    """A validated IDX header: dims (N, H, W) for images or (N,) for labels, element type."""

    dims: tuple[int, ...]
    element_type: int

    @property
    def offset(self) -> int:
        """Header length in bytes: where the payload starts."""
        return 4 + 4 * len(self.dims)

    @property
    def dtype(self) -> np.dtype:
        return _DTYPES[self.element_type]

    @property
    def payload(self) -> int:
        """Payload length in bytes (Python ints: no overflow for hostile headers)."""
        return math.prod(self.dims) * self.dtype.itemsize

    @property
    def total(self) -> int:
        return self.offset + self.payload


# -- headers ----------------------------------------------------------------------------------

def _magic_hint(head: bytes, kind: str) -> str:
    """Why a wrong magic is wrong, when that can be told from the first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "; the file looks gzip-compressed (name it .gz or decompress it)"
    if head[:2] != b"\x00\x00":
        return "; not an IDX file"
    if head[2] not in _ALLOWED[kind]:
        return (f"; element type 0x{head[2]:02X} ({_TYPES.get(head[2], 'unknown')}) is not "
                f"supported, {_ALLOWED_TEXT[kind]}")
    return f"; it has {head[3]} dimension(s), IDX {kind} have {_MAGIC[kind] & 0xFF}"


def _describe(dims: tuple[int, ...] | list[int], kind: str) -> str:
    return f"{dims[0]} images of {dims[1]}x{dims[2]}" if kind == "images" else f"{dims[0]} labels"


def read_header(head: bytes, name: str, kind: str) -> IdxHeader:
    """Validate the magic and dimensions at the start of an IDX file.

    head: the file's first bytes, at least 4 + 4*ndim of them when the file has that many
    (16 for images, 8 for labels). kind: 'images' (N, H, W) or 'labels' (N,). The payload
    is not looked at. Every failure is a DataError naming the file and what is wrong.
    """
    expected = _MAGIC[kind]
    ndim = expected & 0xFF
    if len(head) < 4:
        raise DataError(f"{name}: {len(head)} bytes is too short for an IDX header")
    if head[:2] != b"\x00\x00" or head[2] not in _ALLOWED[kind] or head[3] != ndim:
        magic = int.from_bytes(head[:4], "big")
        raise DataError(f"{name}: bad magic number {magic} (expected {expected} for IDX "
                        f"{kind}){_magic_hint(head[:4], kind)}")
    offset = 4 + 4 * ndim
    if len(head) < offset:
        raise DataError(f"{name}: header is cut short ({len(head)} bytes, needs {offset})")
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims[0] == 0:
        raise DataError(f"{name}: header says 0 {kind}; the file holds no data")
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise DataError(f"{name}: header says images of {dims[1]}x{dims[2]}, which is empty")
    return IdxHeader(dims, head[2])


def check_size(header: IdxHeader, total_size: int, name: str, kind: str) -> None:
    """The file's size must be exactly its header plus the payload the header declares."""
    payload = total_size - header.offset
    if payload != header.payload:
        raise DataError(f"{name}: header says {_describe(header.dims, kind)} ({header.payload} "
                        f"bytes), file holds {payload} bytes of payload")


def parse_header(head: bytes, total_size: int, name: str, kind: str) -> list[int]:
    """Validate an IDX header against the file's size; returns the dimensions.

    head: at least the first 4 + 4*ndim bytes of the file; total_size: the whole file's
    length in bytes.
    """
    header = read_header(head[:total_size], name, kind)
    check_size(header, total_size, name, kind)
    return list(header.dims)


def parse_idx(data: bytes | memoryview, name: str, kind: str) -> np.ndarray:
    """IDX bytes -> array: uint8 (N, H, W) for kind='images', (N,) for kind='labels'.

    Unsigned-byte payloads come back as a read-only view over `data` (no copy); wider labels
    as uint16 (see `labels_array`).
    """
    buf = memoryview(data)
    header = read_header(bytes(buf[:16]), name, kind)
    check_size(header, len(buf), name, kind)
    arr = np.frombuffer(buf, dtype=header.dtype, offset=header.offset).reshape(header.dims)
    return _native(arr, name)


def _native(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 stays as is; big-endian int16/int32 labels -> uint16 after a range check."""
    if arr.dtype.itemsize == 1:
        return arr
    if arr.size:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high > 0xFFFF:
            bad = low if low < 0 else high
            i = int(np.flatnonzero(arr == bad)[0])
            raise DataError(f"{name}: label {bad} at index {i} is not a class number "
                            "(0..65535)")
    return arr.astype(np.uint16)


# -- files: regular files only, header before payload -----------------------------------------

_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def what_is(mode: int) -> str:
    """'a FIFO', 'a folder', 'a character device', ... for a stat mode that is not a file."""
    return next((text for test, text in _NOT_REGULAR if test(mode)), "not a file")


class NotRegularFile(DataError):
    """A FIFO, device, socket or folder where a data file should be."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(f"{path} is not a regular file ({what_is(mode)}); cnncli reads only "
                         "regular files")


def stat_regular(path: Path) -> os.stat_result | None:
    """stat() following symlinks: None when nothing is there, a DataError when it is not a
    regular file (a FIFO, device, folder...). Never opens the path."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, st.st_mode)
    return st


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, refusing anything else without blocking.

    O_NONBLOCK makes opening a FIFO return at once (a plain open waits for a writer);
    fstat on the open descriptor then decides, so a file swapped for a FIFO after a stat
    is refused too.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, st.st_mode)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def physical_memory() -> int | None:
    """This machine's memory in bytes, when the platform says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating, data larger than the machine's memory."""
    memory = physical_memory()
    if memory is not None and nbytes > memory:
        raise DataError(f"{what}: declares {nbytes:,} bytes of data, more than this machine's "
                        f"{memory:,} bytes of memory")


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Up to n bytes, fewer only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        chunk = src.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _fill(src: BinaryIO, buf: bytearray, start: int) -> int:
    """Read into buf[start:] until it is full or the stream ends; returns bytes now in buf."""
    view = memoryview(buf)
    n = start
    while n < len(buf):
        got = src.readinto(view[n : n + CHUNK])  # type: ignore[attr-defined]
        if not got:
            break
        n += got
    return n


def _gzip_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path.name}: not a valid gzip file ({exc or type(exc).__name__})")


def peek_header(path: str | Path, kind: str) -> IdxHeader:
    """The validated header of an IDX file (raw or .gz), reading only its first bytes.

    A raw file's declared size is checked against its real size; a .gz file's payload is
    not inflated (see `inspect_idx` for that).
    """
    p = Path(path)
    ndim = _MAGIC[kind] & 0xFF
    with open_regular(p) as fh:
        if p.suffix == ".gz":
            try:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return read_header(_read_exact(gz, 4 + 4 * ndim), p.name, kind)
            except (OSError, EOFError, zlib.error) as exc:
                raise _gzip_error(p, exc) from None
        size = os.fstat(fh.fileno()).st_size
        header = read_header(_read_exact(fh, 4 + 4 * ndim), p.name, kind)
        check_size(header, size, p.name, kind)
        return header


def read_idx_file(path: str | Path, kind: str, *, sha256: bool = False
                  ) -> tuple[np.ndarray, str | None]:
    """Read one IDX file, raw or gzip-compressed (by its .gz suffix).

    Returns (array, SHA-256 of the decompressed bytes or None): uint8 (N, H, W) images or
    (N,) labels (uint16 for int16/int32 label files). The header is checked against the
    file size (raw) and the machine's memory before the payload is read; a .gz file is
    inflated no further than its header declares.
    """
    p = Path(path)
    ndim = _MAGIC[kind] & 0xFF
    with open_regular(p) as fh:
        if p.suffix == ".gz":
            try:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    buf = _read_declared(gz, p, kind, ndim, size=None)
                    if gz.read(1):
                        raise DataError(f"{p.name}: decompresses to more than the "
                                        f"{len(buf):,} bytes its header declares")
            except (OSError, EOFError, zlib.error) as exc:
                raise _gzip_error(p, exc) from None
        else:
            buf = _read_declared(fh, p, kind, ndim, size=os.fstat(fh.fileno()).st_size)
    digest = hashlib.sha256(buf).hexdigest() if sha256 else None
    header = read_header(bytes(buf[:16]), p.name, kind)
    arr = np.frombuffer(buf, dtype=header.dtype, offset=header.offset).reshape(header.dims)
    return _native(arr, p.name), digest


def _read_declared(src: BinaryIO, p: Path, kind: str, ndim: int, size: int | None) -> bytearray:
    """Header, checks, then exactly the declared payload into one buffer."""
    head = _read_exact(src, 4 + 4 * ndim)
    header = read_header(head, p.name, kind)
    if size is not None:
        check_size(header, size, p.name, kind)
    check_fits_in_memory(header.total, p.name)
    buf = bytearray(header.total)
    buf[: len(head)] = head
    got = _fill(src, buf, len(head))
    if got != header.total:
        what = "decompresses to" if size is None else "now holds"
        raise DataError(f"{p.name}: {what} {got - header.offset} bytes of payload, its header "
                        f"says {_describe(header.dims, kind)} ({header.payload} bytes)")
    return buf


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read and parse one IDX file (raw or .gz); see read_idx_file."""
    return read_idx_file(path, kind)[0]


def inspect_idx(path: str | Path, kind: str) -> list[int]:
    """The validated dimensions of an IDX file without keeping its payload.

    Raw: the header and the file size only (16 bytes read). .gz: the payload is inflated
    and counted (never past the declared size), nothing is kept.
    """
    p = Path(path)
    if p.suffix != ".gz":
        return list(peek_header(p, kind).dims)
    with open_regular(p) as fh:
        try:
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                header = read_header(_read_exact(gz, 4 + 4 * (_MAGIC[kind] & 0xFF)), p.name,
                                     kind)
                left = header.payload
                while left > 0:
                    chunk = gz.read(min(CHUNK, left))
                    if not chunk:
                        break
                    left -= len(chunk)
                if left or gz.read(1):
                    got = "less" if left else "more"
                    raise DataError(f"{p.name}: decompresses to {got} than the "
                                    f"{header.payload:,} bytes of payload its header declares")
        except (OSError, EOFError, zlib.error) as exc:
            raise _gzip_error(p, exc) from None
    return list(header.dims)


# -- splits -----------------------------------------------------------------------------------

def check_pair(images: np.ndarray, labels: np.ndarray, *, images_name: str, labels_name: str,
               num_classes: int = 10) -> None:
    """Images (N, H, W) and labels (M,) of one split agree: N == M, labels in 0..num_classes-1."""
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_name} holds {images.shape[0]} images but {labels_name} holds "
                        f"{labels.shape[0]} labels; the counts must match")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(f"{labels_name}: label {int(labels[bad[0]])} at index {int(bad[0])} is "
                        f"outside 0..{num_classes - 1} ({bad.size} such labels)")


def encode_idx(array: np.ndarray) -> bytes:
    """(N, H, W) images or (N,) labels -> IDX bytes (for tests and for making datasets).

    int16/int32 labels are written as IDX int16/int32 (for over 256 classes); anything else
    as unsigned bytes.
    """
    arr = np.asarray(array)
    if arr.ndim not in (1, 3):
        raise DataError(f"encode_idx: expected (N,) labels or (N, H, W) images, received shape "
                        f"{arr.shape}")
    wide = {np.dtype(np.int16): (0x0B, ">i2"), np.dtype(np.int32): (0x0C, ">i4")}
    if arr.ndim == 1 and arr.dtype in wide:
        code, dtype = wide[arr.dtype]
        body = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    else:
        code, body = 0x08, np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    head = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return head + body


# -- a folder of your own IDX files ------------------------------------------------------------

MIN_CLASSES, MAX_CLASSES = 2, 1000
_KINDS = ("images", "labels", "images", "labels")  # of FILE_NAMES, in order


def _find(root: Path, name: str) -> Path | None:
    """root/name, else root/name.gz; None if neither is there. A FIFO, device or folder under
    either name is a DataError (never opened)."""
    for candidate in (root / name, root / f"{name}.gz"):
        if stat_regular(candidate) is not None:
            return candidate
    return None


def _idx_files(folder: str | os.PathLike[str]) -> tuple[Path, dict[str, Path]]:
    """The folder and its four files (raw preferred over .gz); DataError when any is missing."""
    root = Path(folder).expanduser()
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise DataError(f"{root} is not a folder (an idx dataset is a folder holding "
                            f"{', '.join(FILE_NAMES)}, each raw or .gz)")
    except FileNotFoundError:
        raise DataError(f"idx data folder {root} does not exist") from None
    except OSError as exc:
        raise DataError(f"{root}: cannot be read ({exc.strerror})") from None
    found = {name: _find(root, name) for name in FILE_NAMES}
    missing = [name for name, p in found.items() if p is None]
    if missing:
        also = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise DataError(f"{root / missing[0]} is missing{also}; an idx folder needs all four "
                        f"files, each raw or .gz: {', '.join(FILE_NAMES)}")
    return root, {name: p for name, p in found.items() if p is not None}


def _check_headers(headers: list[IdxHeader], paths: list[Path]) -> None:
    """Counts agree within each split, image sizes across splits, and it all fits in memory."""
    for i in (0, 2):
        images, labels = headers[i], headers[i + 1]
        if images.dims[0] != labels.dims[0]:
            raise DataError(f"{paths[i].name} holds {images.dims[0]} images but "
                            f"{paths[i + 1].name} holds {labels.dims[0]} labels; the counts "
                            "must match")
    if headers[0].dims[1:] != headers[2].dims[1:]:
        (h1, w1), (h2, w2) = headers[0].dims[1:], headers[2].dims[1:]
        raise DataError(f"{paths[0].name} holds {h1}x{w1} images but {paths[2].name} holds "
                        f"{h2}x{w2}; training and test images must be the same size")
    check_fits_in_memory(sum(h.total for h in headers), f"{paths[0].parent}")


def count_classes(train_labels: np.ndarray, test_labels: np.ndarray, where: str,
                  class_names: tuple[str, ...] | list[str] | None = None
                  ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(class names, classes no training label has) of an idx dataset.

    Without names the class count is the largest label + 1 over both splits (a label set
    with gaps is allowed: the missing numbers are classes without examples, reported as
    absent); names "0", "1", ... With names, their count is the class count and every label
    must be below it. Either way 2..1,000 classes; DataError naming both numbers if not.
    """
    top = max(int(train_labels.max()), int(test_labels.max()))
    if class_names is not None:
        names = tuple(str(n) for n in class_names)
        k = len(names)
        if not MIN_CLASSES <= k <= MAX_CLASSES:
            raise DataError(f"{where}: {k} class names given; a dataset has "
                            f"{MIN_CLASSES} to {MAX_CLASSES:,} classes")
        if top >= k:
            raise DataError(f"{where}: the labels go up to {top}, but {k} class names are "
                            f"given (labels must be 0..{k - 1})")
    else:
        k = top + 1
        if k < MIN_CLASSES:
            raise DataError(f"{where}: every label is 0; a classifier needs at least "
                            f"{MIN_CLASSES} classes")
        if k > MAX_CLASSES:
            raise DataError(f"{where}: label {top} means {k:,} classes, more than the "
                            f"{MAX_CLASSES:,} cnncli supports")
        names = tuple(str(i) for i in range(k))
    counts = np.bincount(train_labels, minlength=k)
    return names, tuple(int(c) for c in np.flatnonzero(counts == 0))


def load_idx_folder(folder: str | os.PathLike[str],
                    class_names: tuple[str, ...] | list[str] | None = None) -> DatasetArrays:
    """A folder of your own four MNIST-named IDX files, each raw or .gz, of any image size.

    There are no published hashes to check, so the files are validated structurally: every
    header (and raw file size) before any payload is read, counts and image sizes across
    files, then the payloads and label range. The class count comes from `class_names`
    (e.g. a config's data.classes) or else from the labels (see count_classes). The result
    carries the data identity: the SHA-256 of each file's decompressed bytes and the
    folder's absolute path. Nothing is written into the folder.
    """
    root, found = _idx_files(folder)
    paths = [found[name] for name in FILE_NAMES]
    _check_headers([peek_header(p, kind) for p, kind in zip(paths, _KINDS, strict=True)],
                   paths)
    loaded = [read_idx_file(p, kind, sha256=True) for p, kind in zip(paths, _KINDS, strict=True)]
    arrays = [a for a, _ in loaded]
    names, absent = count_classes(arrays[1], arrays[3], str(root), class_names)
    for i in (0, 2):
        check_pair(arrays[i], arrays[i + 1], images_name=paths[i].name,
                   labels_name=paths[i + 1].name, num_classes=len(names))
    identity = DataIdentity("idx", {n: str(d) for n, (_, d) in zip(FILE_NAMES, loaded,
                                                                    strict=True)},
                            str(root.resolve()))
    return DatasetArrays(*arrays, identity=identity, class_names=names, absent_classes=absent)


def idx_folder_info(folder: str | os.PathLike[str]) -> DataInfo:
    """data info for an idx folder: each file's state, from headers (raw files: 16 bytes
    read; .gz: inflated and counted, nothing kept). Nothing is written."""
    root = Path(folder).expanduser()
    info = DataInfo(root, "idx")
    for name, kind in zip(FILE_NAMES, _KINDS, strict=True):
        row = FileStatus(name, "missing", root / name)
        try:
            p = _find(root, name)
            if p is not None:
                row.path, row.name = p, p.name
                row.shape = inspect_idx(p, kind)
                row.bytes, row.status = p.stat().st_size, "ok"
        except DataError as exc:
            row.status = "not-a-file" if isinstance(exc, NotRegularFile) else "invalid"
            row.detail = str(exc)
        info.files.append(row)
    info.ok = all(r.status == "ok" for r in info.files)
    if not info.ok:
        bad = next((r for r in info.files if r.detail), None)
        info.advice = bad.detail if bad else (
            f"{root} needs all four files, each raw or .gz: {', '.join(FILE_NAMES)}")
    else:
        try:
            _check_headers([peek_header(r.path, k) for r, k in zip(info.files, _KINDS,
                                                                    strict=True)],
                           [r.path for r in info.files])
        except DataError as exc:
            info.ok, info.advice = False, str(exc)
    return info
