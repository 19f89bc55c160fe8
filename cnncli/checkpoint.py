"""Checkpoints: named arrays plus JSON in one safetensors file, written atomically.

A safetensors file cannot execute code when loaded (unlike a pickle) and PyTorch, JAX and
others read it. Inside a cnncli checkpoint:

    tensors   layers.<i>.<name>          the weights, dotted names as Network.named_parameters
              optimizer.<key>            optimizer state, e.g. optimizer.layers.0.weight.m
              train.permutation          the current epoch's shuffle (only when saved mid-epoch)
    metadata  format, format_version     'cnncli.checkpoint', '2'
              config                     the resolved run config (JSON): enough to rebuild all
              name                       the config's name (file stem or preset)
              epoch, step                completed epochs, optimizer steps taken
              rng                        the numpy Generator's bit_generator.state (JSON)
              history                    one metrics row per completed epoch (JSON)
              progress                   the unfinished epoch's counters (JSON, mid-epoch only)
              sha256                     a digest of every tensor and every other metadata
                                         entry: any corrupted byte is detected

Loading checks the format, the digest, the metadata's types and ranges, and every tensor's
name, shape and dtype against the network and optimizer its config describes; any problem is
one CheckpointError line. (Format 1 digested the tensors only: a flipped byte in the config
could pass unnoticed.)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import CheckpointError, ConfigError

FORMAT = "cnncli.checkpoint"
FORMAT_VERSION = "2"
DIGEST = "sha256"
#: the fields of a metrics row (one per epoch: the history, metrics.jsonl and metrics.csv)
METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                 "images_per_s")
#: the counters of an unfinished epoch, saved mid-epoch
PROGRESS_KEYS = ("batch", "loss_sum", "correct", "seen", "seconds")
OPTIMIZER_PREFIX = "optimizer."
PERMUTATION = "train.permutation"


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
    progress: dict[str, Any] | None = None
    permutation: np.ndarray | None = None
    name: str = "run"
    #: where it was read from, for error messages (not saved)
    source: str = "checkpoint"


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes so that `path` holds either its old content or all of `data`, never a part.

    A temporary file in the same folder is written and fsynced, then moved over `path` with
    os.replace (atomic on POSIX and Windows), and the folder is fsynced so the rename lasts.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    }
    if ckpt.progress is not None:
        meta["progress"] = json.dumps(ckpt.progress)
    meta[DIGEST] = _digest(tensors, meta)
    return save(tensors, metadata=meta)


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Write a checkpoint atomically (see write_atomic)."""
    write_atomic(path, checkpoint_bytes(ckpt))


def _header_metadata(data: bytes) -> dict[str, str]:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and parse a checkpoint file; CheckpointError if it is not a sound cnncli one.

    This checks the container and its digest; `load_checkpoint` also checks the contents
    against the network and optimizer the saved config describes.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    label = str(path)
    if not label:
        raise CheckpointError("no checkpoint given: the path is empty")
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{label}: no such checkpoint file")
    if p.is_dir():
        raise CheckpointError(f"{label}: is a folder, expected a .safetensors checkpoint file")
    if not p.is_file():  # a device or pipe: /dev/zero would be read until memory runs out
        raise CheckpointError(f"{label}: is not a regular file, expected a .safetensors "
                              "checkpoint file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{label}: cannot be read ({exc.strerror})") from None
    try:
        tensors = load(data)
        meta = _header_metadata(data)
    except (SafetensorError, ValueError, struct.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{label}: not a readable safetensors checkpoint (truncated or corrupted?): {reason}"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{label}: a safetensors file but not a cnncli checkpoint "
                              "(no cnncli metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{label}: checkpoint format version "
                              f"{meta.get('format_version')!r} is not supported "
                              f"(this cnncli reads {FORMAT_VERSION!r})")
    if meta.get(DIGEST) != _digest(tensors, meta):
        raise CheckpointError(f"{label}: the tensors or metadata do not match their recorded "
                              "digest; the file is corrupted")
    try:
        config = json.loads(meta["config"])
        epoch, step = int(meta["epoch"]), int(meta["step"])
        rng_state = json.loads(meta["rng"])
        history = json.loads(meta["history"])
        progress = json.loads(meta["progress"]) if "progress" in meta else None
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{label}: damaged metadata ({type(exc).__name__}: {exc})") from None
    problem = _metadata_problem(config, epoch, step, rng_state, history, progress,
                                tensors.get(PERMUTATION))
    if problem:
        raise CheckpointError(f"{label}: damaged metadata ({problem})")
    optimizer = {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items()
                 if k.startswith(OPTIMIZER_PREFIX)}
    weights = {k: v for k, v in tensors.items()
               if not k.startswith(OPTIMIZER_PREFIX) and k != PERMUTATION}
    return Checkpoint(config=config, weights=weights, optimizer=optimizer, epoch=epoch,
                      step=step, rng_state=rng_state, history=history, progress=progress,
                      permutation=tensors.get(PERMUTATION), name=meta.get("name", "run"),
                      source=label)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metadata_problem(config: Any, epoch: int, step: int, rng_state: Any, history: Any,
                      progress: Any, permutation: np.ndarray | None) -> str | None:
    """What is wrong with the parsed metadata's types and ranges, or None.

    The digest already catches corruption; this keeps a hand-edited or foreign file from
    reaching the trainer with values it cannot use.
    """
    if not isinstance(config, dict):
        return "config is not a mapping"
    if epoch < 0 or step < 0:
        return f"epoch {epoch} and step {step} must not be negative"
    if not isinstance(history, list) or len(history) != epoch:
        return f"history must hold one row per completed epoch ({epoch})"
    for row in history:
        if not isinstance(row, dict) or not all(k in row for k in METRIC_FIELDS):
            return f"a history row lacks one of {', '.join(METRIC_FIELDS)}"
        if not all(_is_number(row[k]) or (row[k] is None and k.startswith("val_"))
                   for k in METRIC_FIELDS):
            return "a history row holds a value that is not a number"
    if progress is not None:
        if not isinstance(progress, dict) or not all(
                _is_number(progress.get(k)) and progress[k] >= 0 for k in PROGRESS_KEYS):
            return f"progress must give non-negative {', '.join(PROGRESS_KEYS)}"
        if permutation is None or permutation.ndim != 1 or not np.array_equal(
                np.sort(permutation), np.arange(permutation.size)):
            return "a mid-epoch checkpoint needs its shuffle, a permutation of 0..n-1"
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        return f"random generator state: {exc}"
    return None


def check_weights(
    weights: dict[str, np.ndarray], expected: dict[str, np.ndarray], label: str
) -> None:
    """Every expected name present with the same shape and dtype, nothing extra, all finite."""
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        what = (f"missing {missing[0]!r}" if missing else f"has unexpected tensor {extra[0]!r}")
        raise CheckpointError(
            f"{label}: the weights do not fit the model in its config: {what} "
            f"(expected {len(expected)} tensors, found {len(weights)}); "
            "was it made by another architecture?"
        )
    for name, ref in expected.items():
        arr = weights[name]
        if arr.shape != ref.shape or arr.dtype != ref.dtype:
            raise CheckpointError(
                f"{label}: {name} has shape {arr.shape} {arr.dtype}, the model in its config "
                f"expects {ref.shape} {ref.dtype}; was it made by another architecture?"
            )
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{label}: {name} contains NaN or infinite values")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[Checkpoint, Any]:
    """Read a checkpoint and check it fully -> (checkpoint, its validated LoadedConfig).

    The config must validate, the weights must fit the network it describes, and the
    optimizer state must fit the optimizer it describes.
    """
    from cnncli.config import validate_config
    from cnncli.network import build_network
    from cnncli.optim import build_optimizer

    label = str(path)
    ckpt = read_checkpoint(path)
    try:
        cfg = validate_config(ckpt.config, source=f"{label} (saved config)", name=ckpt.name)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    net = build_network(cfg.run.model.input_shape, cfg.run.model.layers)
    check_weights(ckpt.weights, net.named_parameters(), label)
    opt = build_optimizer(cfg.run.optimizer.model_dump(), net.named_parameters())
    try:
        opt.load_state_dict(ckpt.optimizer)
    except CheckpointError as exc:
        raise CheckpointError(f"{label}: {exc}") from None
    return ckpt, cfg
