"""Evaluation: a network over a split, and a whole checkpoint on its data (`cnncli eval`).

    report = evaluate_checkpoint("runs/x/best.safetensors", "test", FetchingSource())
    report.accuracy, report.per_class, report.confusion
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.checkpoint import Checkpoint, read_checkpoint
from cnncli.config import LoadedConfig, validate_config
from cnncli.data.batches import MEAN, STD, to_batch
from cnncli.data.datasets import DataIdentity
from cnncli.data.source import DataSource
from cnncli.data.split import Split, make_dataset
from cnncli.errors import CheckpointError, ConfigError, DataError
from cnncli.layers.losses import Loss, build_loss
from cnncli.metrics import confusion_matrix, per_class
from cnncli.network import Network, build_model
from cnncli.training.folder import BEST, LAST


@dataclass
class Evaluation:
    """Mean loss, accuracy, and the predicted class and its probability for every image."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray = field(default_factory=lambda: np.empty(0))


def evaluate(net: Network, loss: Loss, split: Split, batch_size: int = 500,
             mean: float = MEAN, std: float = STD,
             forward: Callable[[np.ndarray], np.ndarray] | None = None) -> Evaluation:
    """Forward every image once (evaluation mode), in order, `batch_size` at a time.

    `forward` replaces net.forward (e.g. a DataParallel's, spreading the work over workers)."""
    forward = forward or net.forward
    n = len(split)
    predictions = np.empty(n, dtype=np.int64)
    confidence = np.empty(n, dtype=np.float64)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        y = split.labels[start:stop]
        out = forward(to_batch(split.images[start:stop], mean=mean, std=std))  # (K, B)
        total += loss.forward(out, y) * (stop - start)
        predictions[start:stop] = out.argmax(axis=0)
        confidence[start:stop] = loss.probabilities(out).max(axis=0)
    accuracy = float(np.mean(predictions == split.labels)) if n else 0.0
    return Evaluation(total / max(n, 1), accuracy, predictions, split.labels, confidence)


def config_of(ckpt: Checkpoint) -> LoadedConfig:
    """The validated config a checkpoint carries; CheckpointError if it is not valid."""
    try:
        return validate_config(ckpt.config, source=f"{ckpt.source} (saved config)",
                               name=ckpt.name)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def model_of(ckpt: Checkpoint, cfg: LoadedConfig) -> Network:
    """The checkpoint's model, built once and holding its saved weights."""
    model = cfg.run.model
    net = build_model(model.input_shape, model.layers)
    net.load_parameters(ckpt.weights, source=ckpt.source)
    return net


@dataclass
class EvalReport:
    """What `cnncli eval` shows: accuracy, loss, per-class metrics and the confusion matrix."""

    checkpoint: str
    epoch: int
    split: str
    images: int
    accuracy: float
    loss: float
    per_class: list[dict[str, Any]]
    confusion: np.ndarray
    classes: list[str]
    #: the data scored (DataIdentity.to_dict()), and whether it is the data the run trained on
    data: dict[str, Any] = field(default_factory=dict)
    same_data: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "split": self.split,
                "images": self.images, "accuracy": self.accuracy, "loss": self.loss,
                "classes": self.classes, "per_class": self.per_class,
                "confusion_matrix": self.confusion.tolist(), "data": self.data,
                "same_data": self.same_data}


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's best.safetensors (its last.safetensors
    when it has no best); CheckpointError for a folder that holds neither."""
    p = Path(path)
    if str(path) and p.is_dir():
        for name in (BEST, LAST):
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{path}: a folder without {BEST} or {LAST}; give a checkpoint "
                              "file or a run folder")
    return p


def evaluate_checkpoint(path: str | Path, split: str, source: DataSource,
                        batch_size: int | None = None) -> EvalReport:
    """Score a checkpoint (or a run folder's best one, see find_checkpoint) on one split of its
    data: 'test', 'val' (the run's validation images) or 'train' (the whole training file)."""
    path = find_checkpoint(path) if str(path) else path
    ckpt = read_checkpoint(path)
    cfg = config_of(ckpt)
    net = model_of(ckpt, cfg)
    run = cfg.run
    expected = DataIdentity.from_dict(ckpt.data)
    arrays = source.load(run.data, expected)
    if len(arrays.class_names) != len(ckpt.classes):
        raise DataError(f"the data has {len(arrays.class_names)} classes, the model "
                        f"{len(ckpt.classes)}")
    data = make_dataset(arrays.train_images, arrays.train_labels, arrays.test_images,
                        arrays.test_labels, 0.0 if split == "train" else run.train.val_split)
    part = {"test": data.test, "val": data.val, "train": data.train}[split]
    if part is None:
        raise ConfigError(f"--split {split}: this run has no {split} images "
                          f"(train.val_split is {run.train.val_split})")
    ev = evaluate(net, build_loss(run.loss), part, batch_size or run.train.eval_batch_size,
                  ckpt.mean, ckpt.std)
    cm = confusion_matrix(ev.labels, ev.predictions, len(ckpt.classes))
    return EvalReport(str(path), ckpt.epoch, split, len(part), ev.accuracy, ev.loss,
                      per_class(cm), cm, list(ckpt.classes), arrays.identity.to_dict(),
                      arrays.identity.same_data(expected))
