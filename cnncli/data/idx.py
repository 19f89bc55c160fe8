"""IDX files (the MNIST container format): parse and validate, never trust a header.

Layout: a 4-byte magic (0x00 0x00, element type, number of dimensions), then one big-endian
uint32 per dimension, then the payload in C order. MNIST uses element type 0x08 (unsigned
byte): images have magic 2051 (0x00000803: 3 dims N, H, W), labels 2049 (0x00000801: N).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnncli.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}
_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
          0x0D: "float32", 0x0E: "float64"}


def _magic_hint(head: bytes, kind: str) -> str:
    """Why a wrong magic is wrong, when that can be told from the first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "; the file looks gzip-compressed (decompress it first)"
    if head[:2] != b"\x00\x00":
        return "; not an IDX file"
    if head[2] != 0x08:
        return (f"; element type 0x{head[2]:02X} ({_TYPES.get(head[2], 'unknown')}) is not "
                "supported, only unsigned bytes (0x08)")
    return f"; it has {head[3]} dimension(s), IDX {kind} have {_MAGIC[kind] & 0xFF}"


def _describe(dims: list[int], kind: str) -> str:
    return f"{dims[0]} images of {dims[1]}x{dims[2]}" if kind == "images" else f"{dims[0]} labels"


def parse_header(head: bytes, total_size: int, name: str, kind: str) -> list[int]:
    """Validate an IDX header against the file's size; returns the dimensions.

    head: at least the first 4 + 4*ndim bytes of the file (16 for images, 8 for labels);
    total_size: the whole file's length in bytes. kind: 'images' (N, H, W) or 'labels' (N,).
    Every failure is a DataError naming the file and what is wrong.
    """
    expected = _MAGIC[kind]
    ndim = expected & 0xFF
    if total_size < 4:
        raise DataError(f"{name}: {total_size} bytes is too short for an IDX header")
    magic = int.from_bytes(head[:4], "big")
    if magic != expected:
        raise DataError(f"{name}: bad magic number {magic} (expected {expected} for IDX "
                        f"{kind}){_magic_hint(head[:4], kind)}")
    header = 4 + 4 * ndim
    if total_size < header:
        raise DataError(f"{name}: header is cut short ({total_size} bytes, needs {header})")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if dims[0] == 0:
        raise DataError(f"{name}: header says 0 {kind}; the file holds no data")
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise DataError(f"{name}: header says images of {dims[1]}x{dims[2]}, which is empty")
    payload = total_size - header
    need = math.prod(dims)  # Python ints: no overflow for hostile headers
    if payload != need:
        raise DataError(f"{name}: header says {_describe(dims, kind)} ({need} bytes), "
                        f"file holds {payload} bytes of payload")
    return dims


def parse_idx(data: bytes | memoryview, name: str, kind: str) -> np.ndarray:
    """IDX bytes -> uint8 array: (N, H, W) for kind='images', (N,) for kind='labels'.

    The result is a read-only view over `data` (no copy).
    """
    buf = memoryview(data)
    dims = parse_header(bytes(buf[:16]), len(buf), name, kind)
    offset = 4 + 4 * len(dims)
    return np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read and parse one uncompressed IDX file (see parse_idx); one read, no copy after it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror})") from None
    return parse_idx(data, p.name, kind)


def inspect_idx(path: str | Path, kind: str) -> list[int]:
    """The validated dimensions of an IDX file, reading only its header."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(16)
        size = p.stat().st_size
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror})") from None
    return parse_header(head, size, p.name, kind)


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
    """uint8 (N, H, W) or (N,) -> IDX bytes (for tests and for making custom datasets)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if arr.ndim not in (1, 3):
        raise DataError(f"encode_idx: expected (N,) labels or (N, H, W) images, received shape "
                        f"{arr.shape}")
    magic = IMAGES_MAGIC if arr.ndim == 3 else LABELS_MAGIC
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()
