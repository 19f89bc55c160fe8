"""IDX files (the MNIST container format): parse and validate, never trust a header.

Layout: a 4-byte magic (0x00 0x00, type code, number of dimensions), then one big-endian
uint32 per dimension, then the payload. MNIST uses type 0x08 (unsigned byte):
images have magic 2051 (0x00000803: 3 dims N, H, W), labels 2049 (0x00000801: 1 dim N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnncli.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def parse_idx(data: bytes | memoryview, name: str, kind: str) -> np.ndarray:
    """IDX bytes -> uint8 array: (N, H, W) for kind='images', (N,) for kind='labels'.

    Every failure is a DataError naming the file and what is wrong. The result is a
    read-only view over `data` (no copy).
    """
    expected = IMAGES_MAGIC if kind == "images" else LABELS_MAGIC
    ndim = 3 if kind == "images" else 1
    buf = memoryview(data)
    if len(buf) < 4:
        raise DataError(f"{name}: {len(buf)} bytes is too short for an IDX header")
    magic = int.from_bytes(buf[:4], "big")
    if magic != expected:
        raise DataError(
            f"{name}: bad magic number {magic} (expected {expected} for IDX {kind}); "
            "not an MNIST-style IDX file"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{name}: header is cut short ({len(buf)} bytes, needs {header})")
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise DataError(f"{name}: header says images of {dims[1]}x{dims[2]}, which is empty")
    payload = len(buf) - header
    need = int(np.prod(dims))
    if payload != need:
        what = (f"{dims[0]} images of {dims[1]}x{dims[2]}" if kind == "images"
                else f"{dims[0]} labels")
        raise DataError(
            f"{name}: header says {what} ({need} bytes), file holds {payload} bytes of payload"
        )
    arr = np.frombuffer(buf, dtype=np.uint8, offset=header)
    return arr.reshape(dims)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read and parse one uncompressed IDX file (see parse_idx)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p.name}: cannot be read ({exc.strerror})") from None
    return parse_idx(data, p.name, kind)


def check_pair(images: np.ndarray, labels: np.ndarray, name: str, num_classes: int) -> None:
    """Images and labels of one split agree: same count, labels in 0..num_classes-1."""
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{name}: {images.shape[0]} images but {labels.shape[0]} labels; the counts must match"
        )
    if labels.size and int(labels.max()) >= num_classes:
        bad = int(labels.max())
        raise DataError(
            f"{name}: label {bad} is outside 0..{num_classes - 1} "
            f"(first at index {int(np.argmax(labels >= num_classes))})"
        )


def encode_idx(array: np.ndarray) -> bytes:
    """uint8 (N, H, W) or (N,) -> IDX bytes (for tests and custom datasets)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IMAGES_MAGIC if arr.ndim == 3 else LABELS_MAGIC
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()
