"""Checkpoints: named arrays plus JSON in one safetensors file. This module converts between
the bytes of such a file and a `Checkpoint`, and nothing else.

A safetensors file cannot execute code when loaded (unlike a pickle) and PyTorch, JAX and
others read it. Inside a cnncli checkpoint:

    tensors   layers.<i>.<name>          the model's parameters and buffers (Network.state)
              optimizer.<key>            optimizer state, e.g. optimizer.layers.0.weight.m
              train.permutation          the current epoch's shuffle (only when saved mid-epoch)
    metadata  format, format_version     'cnncli.checkpoint', '3'
              config                     the resolved run config (JSON): enough to rebuild all
              name                       the config's name (file stem or preset)
              epoch, step                completed epochs, optimizer steps taken
              rng                        the numpy Generator's bit_generator.state (JSON)
              history                    one metrics row per completed epoch (JSON)
              progress                   the unfinished epoch's counters (JSON, mid-epoch only)
              data                       what the run trained on (JSON): dataset, file hashes,
                                         and for an idx folder where it was
              classes                    the class names, in label order (JSON)
              normalise                  [mean, std] of the pixels (0..1 scale) the batches
                                         were normalised with (JSON)
              cnncli                     the version of cnncli that wrote it
              sha256                     a digest of every tensor and every other metadata
                                         entry: any corrupted byte is detected

Reading checks the container, the format, the digest and every metadata entry's type, range
and consistency (a hand-edited file re-signed with a new digest still cannot reach the trainer
with values it cannot use); any problem is one CheckpointError line. Whether the tensors fit a
model is the model's check (Network.load_parameters), whether the counters fit a run is the
resume's. Format 3 added `data` and `cnncli`; files of formats 1 and 2 are refused by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli import __version__
from cnncli.data.datasets import DataIdentity
from cnncli.errors import CheckpointError, DataError
from cnncli.files import write_atomic

FORMAT = "cnncli.checkpoint"
FORMAT_VERSION = "3"
DIGEST = "sha256"
OPTIMIZER_PREFIX = "optimizer."
PERMUTATION = "train.permutation"
#: a header bigger than this is refused before it is parsed (a real one is a few hundred KB)
MAX_HEADER = 64 << 20
#: JSON metadata nested deeper than this is refused (ours is at most 4 deep)
MAX_DEPTH = 32
#: the counters of an unfinished epoch: name -> (type, minimum)
PROGRESS = {"batch": int, "loss_sum": float, "correct": int, "seen": int, "seconds": float}


@dataclass
class Checkpoint:
    """Everything a run needs to continue exactly where it stopped."""

    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    epoch: int
    step: int
    rng_state: dict[str, Any]
    history: list[dict[str, Any]]
    #: what the run trained on: DataIdentity.to_dict(): {'dataset', 'files', 'folder'}
    data: dict[str, Any]
    progress: dict[str, Any] | None = None
    permutation: np.ndarray | None = None
    name: str = "run"
    #: the class names, in label order
    classes: list[str] = field(default_factory=lambda: [str(k) for k in range(10)])
    #: the pixel mean and standard deviation (0..1 scale) batches were normalised with
    mean: float = 0.1307
    std: float = 0.3081
    #: the cnncli version that wrote it
    version: str = __version__
    #: where it was read from, for error messages (not saved)
    source: str = "checkpoint"


def _digest(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order, then over the
    metadata (all but the digest itself) as canonical JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = _c(tensors[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    rest = {k: v for k, v in meta.items() if k != DIGEST}
    h.update(json.dumps(rest, sort_keys=True).encode())
    return h.hexdigest()


def _c(arr: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)."""
    return np.require(arr, requirements="C")


def checkpoint_bytes(ckpt: Checkpoint) -> bytes:
    """A Checkpoint -> the bytes of its safetensors file."""
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {k: _c(v) for k, v in ckpt.weights.items()}
    for k, v in ckpt.optimizer.items():
        tensors[OPTIMIZER_PREFIX + k] = _c(v)
    if ckpt.permutation is not None:
        tensors[PERMUTATION] = _c(ckpt.permutation.astype(np.int64, copy=False))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(ckpt.config),
        "epoch": str(ckpt.epoch),
        "step": str(ckpt.step),
        "rng": json.dumps(ckpt.rng_state),
        "history": json.dumps(ckpt.history),
        "name": ckpt.name,
        "data": json.dumps(ckpt.data),
        "classes": json.dumps(list(ckpt.classes)),
        "normalise": json.dumps([ckpt.mean, ckpt.std]),
        "cnncli": ckpt.version,
    }
    if ckpt.progress is not None:
        meta["progress"] = json.dumps(ckpt.progress)
    meta[DIGEST] = _digest(tensors, meta)
    return save(tensors, metadata=meta)


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Write a checkpoint atomically (see cnncli.files.write_atomic)."""
    write_atomic(path, checkpoint_bytes(ckpt))


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and parse a checkpoint file; CheckpointError if it is not a sound cnncli one."""
    label = str(path)
    if not label:
        raise CheckpointError("no checkpoint given: the path is empty")
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{label}: is a folder, expected a .safetensors checkpoint file")
    if not p.exists():
        raise CheckpointError(f"{label}: no such checkpoint file")
    if not p.is_file():  # a device or pipe: /dev/zero would be read until memory runs out
        raise CheckpointError(f"{label}: is not a regular file, expected a .safetensors "
                              "checkpoint file")
    try:
        with p.open("rb") as fh:
            return parse_checkpoint(fh, label)
    except OSError as exc:
        raise CheckpointError(f"{label}: cannot be read ({exc.strerror})") from None


def parse_checkpoint(fh: Any, label: str) -> Checkpoint:
    """A binary file object holding a checkpoint -> Checkpoint (see read_checkpoint).

    The header is read and checked against the file's size before any tensor is read, so a
    huge or sparse file that is not a checkpoint costs no memory.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    size = os.fstat(fh.fileno()).st_size
    head = fh.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{label}: not a readable safetensors checkpoint (only {size} "
                              "bytes)")
    (n,) = struct.unpack("<Q", head)
    if n > min(MAX_HEADER, size - 8):
        if _texty(head) and size < 1 << 20 and _is_config(fh):
            raise CheckpointError(f"{label}: this is a config, not a checkpoint; train it with "
                                  f"cnncli train --config {label}")
        looks = " (it looks like text)" if _texty(head) else ""
        raise CheckpointError(f"{label}: not a safetensors checkpoint: its header would be "
                              f"{n:,} bytes in a file of {size:,}{looks}")
    header = _loads(fh.read(n), label, "header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{label}: not a safetensors checkpoint (the header is not a map)")
    end = 0
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if name != "__metadata__" and isinstance(offsets, list) and len(offsets) == 2 \
                and all(_is_int(o) for o in offsets):
            end = max(end, offsets[1])
    if 8 + n + end != size:
        raise CheckpointError(f"{label}: truncated or padded: the header describes {8 + n + end:,}"
                              f" bytes, the file holds {size:,}")
    fh.seek(0)
    data = fh.read()
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{label}: not a readable safetensors checkpoint (truncated or "
                              f"corrupted?): {reason}") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{label}: damaged metadata (not a map of strings)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{label}: a safetensors file but not a cnncli checkpoint "
                              "(no cnncli metadata)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        older = version in ("1", "2")
        raise CheckpointError(
            f"{label}: checkpoint format version {version!r} "
            f"{'is from an older cnncli' if older else 'is not supported'}; this cnncli reads "
            f"format {FORMAT_VERSION!r}" + ("; retrain, or evaluate it with the cnncli that "
                                            "wrote it" if older else ""))
    if meta.get(DIGEST) != _digest(tensors, meta):
        raise CheckpointError(f"{label}: the tensors or metadata do not match their recorded "
                              "digest; the file is corrupted")
    return _from_parts(tensors, meta, label)


def _texty(head: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _is_config(fh: Any) -> bool:
    """Whether a small text file is a YAML mapping with a `model` section."""
    import yaml

    fh.seek(0)
    try:
        data = yaml.safe_load(fh.read().decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError):
        return False
    return isinstance(data, dict) and "model" in data


def _loads(text: bytes | str, label: str, what: str) -> Any:
    """json.loads with a depth bound; CheckpointError on anything malformed."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:80]
        raise CheckpointError(f"{label}: damaged metadata ({what}: {reason})") from None
    if _depth(value) > MAX_DEPTH:
        raise CheckpointError(f"{label}: damaged metadata ({what}: nested too deeply)")
    return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level + 1])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level + 1])
    return level


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _from_parts(tensors: dict[str, np.ndarray], meta: dict[str, str], label: str
                ) -> Checkpoint:
    """The checked metadata and tensors -> Checkpoint; CheckpointError naming what is wrong."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{label}: damaged metadata ({what})")

    for key in ("config", "epoch", "step", "rng", "history", "data", "classes", "normalise"):
        if key not in meta:
            raise bad(f"no {key}")
    config = _loads(meta["config"], label, "config")
    rng_state = _loads(meta["rng"], label, "rng")
    history = _loads(meta["history"], label, "history")
    data = _loads(meta["data"], label, "data")
    classes = _loads(meta["classes"], label, "classes")
    normalise = _loads(meta["normalise"], label, "normalise")
    progress = _loads(meta["progress"], label, "progress") if "progress" in meta else None
    if not isinstance(config, dict):
        raise bad("config is not a mapping")
    try:
        DataIdentity.from_dict(data)
    except DataError as exc:
        raise bad(str(exc)) from None
    if not (isinstance(classes, list) and 2 <= len(classes) <= 1000
            and all(isinstance(c, str) for c in classes)):
        raise bad("classes must be a list of 2 to 1,000 names")
    if not (isinstance(normalise, list) and len(normalise) == 2
            and all(_is_number(v) for v in normalise) and normalise[1] > 0):
        raise bad("normalise must be [mean, std] with std > 0")
    try:
        epoch, step = int(meta["epoch"]), int(meta["step"])
    except ValueError:
        raise bad(f"epoch {meta['epoch']!r} and step {meta['step']!r} must be integers") from None
    if not (0 <= epoch < 2**31 and 0 <= step < 2**53):
        raise bad(f"epoch {epoch} and step {step} out of range")
    if not isinstance(history, list) or len(history) != epoch:
        raise bad(f"history must hold one row per completed epoch ({epoch})")
    for i, row in enumerate(history):
        if not isinstance(row, dict) or row.get("epoch") != i + 1 or not all(
                isinstance(k, str) and (v is None or _is_number(v)) for k, v in row.items()):
            raise bad(f"history row {i + 1} must be a mapping of numbers with epoch {i + 1}")
    permutation = tensors.get(PERMUTATION)
    if progress is not None:
        if not isinstance(progress, dict) or set(progress) != set(PROGRESS) or not all(
                (_is_int(progress[k]) if t is int else _is_number(progress[k]))
                and progress[k] >= 0 for k, t in PROGRESS.items()):
            raise bad("progress must give non-negative integers batch, correct, seen and "
                      "numbers loss_sum, seconds")
        if progress["correct"] > progress["seen"] or (progress["batch"] > 0) != (
                progress["seen"] > 0):
            raise bad("progress counters disagree (correct > seen, or batches without images)")
        if permutation is None or permutation.dtype != np.int64 or permutation.ndim != 1 \
                or not np.array_equal(np.sort(permutation), np.arange(permutation.size)):
            raise bad("a mid-epoch checkpoint needs its shuffle, a permutation of 0..n-1")
    elif permutation is not None:
        raise bad("a shuffle without an unfinished epoch")
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise bad(f"random generator state: {str(exc)[:80]}") from None
    optimizer = {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items()
                 if k.startswith(OPTIMIZER_PREFIX)}
    weights = {k: v for k, v in tensors.items()
               if not k.startswith(OPTIMIZER_PREFIX) and k != PERMUTATION}
    return Checkpoint(config=config, weights=weights, optimizer=optimizer, epoch=epoch,
                      step=step, rng_state=rng_state, history=history, progress=progress,
                      permutation=permutation, name=meta.get("name", "run"), data=data,
                      classes=classes, mean=float(normalise[0]), std=float(normalise[1]),
                      version=meta.get("cnncli", "?"), source=label)
