"""Training and evaluation loops, run folders and exact resume. Nothing here prints.

    data = load_dataset(cfg.run)                          # fixed train/validation split
    trainer = Trainer(cfg, data, run_dir)                 # or Trainer(..., resume=checkpoint)
    summary = trainer.fit(callbacks, stop)                # writes the run folder as it goes

One numpy Generator, seeded from `train.seed`, draws the initial weights, then each epoch's
shuffle and every dropout mask, in that order. Its state is saved in every checkpoint, so a
resumed run draws exactly what the uninterrupted run would have drawn: the weights and metrics
of "2 epochs" and "1 epoch, then resume for 1 more" are bit-identical (in the same
environment: the same numpy and BLAS).

A run folder holds:

    config.yaml        the resolved config (every default filled in)
    metrics.jsonl      one JSON object per epoch: epoch, lr, train_loss, train_acc, val_loss,
    metrics.csv          val_acc, seconds, images_per_s (the same rows as CSV)
    last.safetensors   the latest state (end of an epoch, or mid-epoch after Ctrl-C)
    best.safetensors   the state after the epoch with the best validation accuracy
    summary.json       at the end: best epoch, test accuracy and loss of the best weights, time

`lr` in a row is the learning rate of the epoch's last step; `train_loss` and `train_acc` are
means over the epoch's batches as they were trained (training mode, before each update).
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.checkpoint import (
    METRIC_FIELDS,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_atomic,
)
from cnncli.config import LoadedConfig, Override, RunConfig, dump_yaml, validate_config
from cnncli.errors import CheckpointError, CnnError, ConfigError, TrainingError
from cnncli.layers.losses import Loss, build_loss
from cnncli.network import Network, build_network
from cnncli.optim import build_optimizer, make_schedule

#: seeds the fixed train/validation split; independent of train.seed so that every run of a
#: config validates on the same images
SPLIT_SEED = 1998
LAST, BEST = "last.safetensors", "best.safetensors"


class TrainingInterrupted(CnnError):
    """Ctrl-C: the current step finished, a resumable checkpoint was written."""

    exit_code = 130

    def __init__(self, checkpoint: Path, epoch: int, batch: int, step: int) -> None:
        super().__init__(f"training interrupted in epoch {epoch} after batch {batch} (step "
                         f"{step}); resumable checkpoint: {checkpoint}")
        self.checkpoint, self.epoch, self.batch, self.step = checkpoint, epoch, batch, step


# -- data -----------------------------------------------------------------------------------


@dataclass
class Split:
    """Images (N, H, W) uint8 and labels (N,) int64 of one part of a dataset."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """The images a run trains on, validates on (optional) and tests on (optional)."""

    train: Split
    val: Split | None
    test: Split | None


def split_indices(n: int, val_split: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/validation split of n images -> (train_idx, val_idx), each ascending.

    round(val_split * n) images go to validation, chosen by a permutation drawn from a
    generator seeded with SPLIT_SEED: the same images for every train.seed, mixed over the
    whole file (so every class is represented).
    """
    n_val = int(round(val_split * n))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_dataset(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray | None,
    test_labels: np.ndarray | None,
    val_split: float,
    limit: int | None = None,
) -> Dataset:
    """Split the training file into train/validation (split_indices), then keep the first
    `limit` training images. Validation and test sets are never limited."""
    train_idx, val_idx = split_indices(len(train_labels), val_split)
    if limit is not None:
        train_idx = train_idx[:limit]
    labels = train_labels.astype(np.int64, copy=False)
    train = Split(train_images[train_idx], labels[train_idx])
    val = Split(train_images[val_idx], labels[val_idx]) if len(val_idx) else None
    test = None
    if test_images is not None and test_labels is not None:
        test = Split(test_images, test_labels.astype(np.int64, copy=False))
    return Dataset(train, val, test)


def load_dataset(
    run: RunConfig,
    *,
    data_dir: str | Path | None = None,
    mirrors: tuple[str, ...] | list[str] = (),
    progress: Any = None,
    report: Any = None,
) -> Dataset:
    """Load MNIST (fetched and verified by cnncli.data if needed), split as the config says.

    `data_dir` (e.g. --data-dir) wins over the config's data.data_dir; `mirrors` are tried
    before the config's data.mirrors. `progress` and `report` are cnncli.data's
    ProgressFactory and Reporter.
    """
    from cnncli.data import load_idx_folder, load_mnist

    folder = data_dir if data_dir is not None else run.data.data_dir
    if run.data.dataset == "idx":
        if folder is None:
            raise ConfigError("data.dataset idx needs its folder: set data.data_dir or pass "
                              "--data-dir")
        arrays = load_idx_folder(folder)
        check_image_size(arrays.train_images, run.model.input_shape, Path(folder))
        check_image_size(arrays.test_images, run.model.input_shape, Path(folder))
    else:
        arrays = load_mnist(folder, mirrors=[*mirrors, *run.data.mirrors], progress=progress,
                            report=report)
    return make_dataset(arrays.train_images, arrays.train_labels, arrays.test_images,
                        arrays.test_labels, run.train.val_split, run.train.limit)


def check_image_size(images: np.ndarray, input_shape: list[int], folder: Path) -> None:
    """images: (N, H, W) must match the model's input_shape [1, H, W]; ConfigError if not."""
    h, w = images.shape[1:]
    if [1, h, w] != list(input_shape):
        raise ConfigError(f"{folder}: the images are {h}x{w}, but model.input_shape is "
                          f"{list(input_shape)}; set it to [1, {h}, {w}]")


# -- evaluation -----------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Mean loss, accuracy and the predicted class of every image."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray


def evaluate(net: Network, loss: Loss, split: Split, batch_size: int = 500) -> Evaluation:
    """Forward every image once (evaluation mode), in order, `batch_size` at a time."""
    from cnncli.data.batches import to_batch

    n = len(split)
    predictions = np.empty(n, dtype=np.int64)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        y = split.labels[start:stop]
        out = net.forward(to_batch(split.images[start:stop]), training=False)  # (K, B)
        total += loss.forward(out, y) * (stop - start)
        predictions[start:stop] = out.argmax(axis=0)
    accuracy = float(np.mean(predictions == split.labels)) if n else 0.0
    return Evaluation(total / max(n, 1), accuracy, predictions, split.labels)


# -- progress callbacks and Ctrl-C ----------------------------------------------------------


class Callbacks:
    """Hooks the loop calls to report progress; the defaults do nothing."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        """Epoch `epoch` (1-based) of `epochs` starts; `done` batches ran before a resume."""

    def on_step(self, epoch: int, batch: int, loss: float, accuracy: float,
                images_per_s: float) -> None:
        """`batch` batches of the epoch are done; running mean loss and accuracy so far."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """An epoch finished and was checkpointed; `row` is its metrics row."""


class StopFlag:
    """Set to ask the loop to stop after the current step (see deferred_interrupt)."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def deferred_interrupt(on_request: Callable[[], None] | None = None) -> Iterator[StopFlag]:
    """Turn the first Ctrl-C into a stop request the loop honours between steps.

    The step in flight finishes (parameters are never left half-updated), then the loop
    writes a resumable checkpoint and raises TrainingInterrupted. `on_request` is called on
    that first Ctrl-C (the CLI says what is happening). A second Ctrl-C raises
    KeyboardInterrupt at once. Outside the main thread this only yields a flag.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        if on_request is not None:
            on_request()

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# -- run folders ----------------------------------------------------------------------------


def default_run_dir(name: str, now: datetime | None = None) -> Path:
    """runs/<config name>-<YYYYmmdd-HHMMSS> (relative to the working folder)."""
    return Path("runs") / f"{name}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def check_new_run_dir(path: Path) -> None:
    """A run never writes into an existing non-empty folder; ConfigError if `path` is one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        hint = f"; to continue it: cnncli train --resume {path / LAST}" if (path / LAST).exists() \
            else ""
        raise ConfigError(f"--out {path}: folder exists and is not empty; choose another "
                          f"--out{hint}")


def _make_folder(path: Path, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok:
            raise
        raise TrainingError(f"run folder {path}: cannot be created (a file is in the way)"
                            ) from None
    except OSError as exc:
        raise TrainingError(f"run folder {path}: cannot be created ({exc.strerror})") from None


def reserve_run_dir(out: Path | None, name: str, now: datetime | None = None
                    ) -> tuple[Path, bool]:
    """Create the run folder before any data is loaded -> (folder, whether it was made here).

    `out` must be new or empty (check_new_run_dir). Without it the folder is
    runs/<name>-<timestamp>, or that name with -2, -3, ... when another run started in the
    same second: each is made with exist_ok=False, so two runs launched together never share
    a folder. A folder made here that is still empty when the command ends can be removed
    with remove_if_empty.
    """
    if out is not None:
        check_new_run_dir(out)
        created = not out.exists()
        _make_folder(out, exist_ok=True)
        return out, created
    base = default_run_dir(name, now)
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            _make_folder(path, exist_ok=False)
            return path, True
        except FileExistsError:
            continue
    raise TrainingError(f"run folder {base}: 999 runs named like it exist; pass --out DIR")


def remove_if_empty(path: Path) -> None:
    """Remove a folder that holds nothing (a run that failed before writing anything)."""
    try:
        path.rmdir()
    except OSError:
        pass  # not empty, or already gone: nothing to tidy


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the whole history (each atomically)."""
    lines = "".join(json.dumps(row) + "\n" for row in history)
    write_atomic(run_dir / "metrics.jsonl", lines.encode())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
    write_atomic(run_dir / "metrics.csv", buf.getvalue().encode())


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch with the highest validation accuracy (the first on ties); the last epoch when
    there is no validation set; None before the first epoch."""
    if not history:
        return None
    if history[0].get("val_acc") is None:
        return int(history[-1]["epoch"])
    best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
    return int(best["epoch"])


@dataclass
class ResumePlan:
    """What `cnncli train --resume` continues: the checked checkpoint, config and folder."""

    checkpoint: Checkpoint
    config: LoadedConfig
    run_dir: Path


def plan_resume(
    path: str | Path, *, epochs: int | None = None, out: Path | None = None
) -> ResumePlan:
    """Check a --resume request before any data is loaded or anything is written.

    The run continues in the checkpoint's folder only when the checkpoint is that folder's
    last.safetensors (the run's own latest state). Any other file (best.safetensors, whose
    folder holds a later last.safetensors, or a checkpoint copied somewhere beside files of
    the user's) needs `out`, a new folder: continuing in place would overwrite what is there.
    """
    path = Path(path)
    ckpt, cfg = load_checkpoint(path)
    if epochs is not None:
        cfg = validate_config(ckpt.config, source=f"{path} (saved config)", name=cfg.name,
                              overrides=[Override.of("--epochs", "train.epochs", epochs)])
    total = cfg.run.train.epochs
    if ckpt.progress is None and ckpt.epoch >= total:
        raise ConfigError(f"--resume {path}: the run already finished its {ckpt.epoch} "
                          f"epochs; pass --epochs N with N > {ckpt.epoch} to train more")
    if ckpt.epoch + (ckpt.progress is not None) > total:
        raise ConfigError(f"--epochs {total}: the checkpoint is already in epoch "
                          f"{ckpt.epoch + 1}; pass --epochs {ckpt.epoch + 1} or more")
    if out is not None:
        check_new_run_dir(out)
        run_dir = out
    else:
        run_dir = path.parent
        last = run_dir / LAST
        if path.name != LAST:
            clash = (f"would overwrite {last} (epoch {_epoch_of(last)})" if last.exists() else
                     f"would write a run's files (config.yaml, metrics, {LAST}, ...) into "
                     f"{run_dir}")
            raise ConfigError(
                f"--resume {path}: only a run folder's {LAST} continues in place, and this "
                f"{clash}; pass --out NEW_FOLDER to continue from it in a new run folder")
    return ResumePlan(ckpt, cfg, run_dir)


def _epoch_of(path: Path) -> str:
    try:
        from cnncli.checkpoint import read_checkpoint

        return str(read_checkpoint(path).epoch)
    except CheckpointError:
        return "unreadable"


# -- the trainer ----------------------------------------------------------------------------


class Trainer:
    """Owns the network, loss, optimizer, generator and progress of one run."""

    def __init__(
        self, cfg: LoadedConfig, data: Dataset, run_dir: str | Path,
        resume: Checkpoint | None = None,
    ) -> None:
        run = cfg.run
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.config = cfg.resolved()
        if len(data.train) == 0:
            raise ConfigError("the training set is empty; check --limit and train.val_split")
        for name in ("target_accuracy", "patience"):
            if getattr(run.train, name) is not None and data.val is None:
                raise ConfigError(
                    f"train.{name} needs validation images, but train.val_split "
                    f"{run.train.val_split:g} of {len(data.train):,} training images gives none")
        self.rng = np.random.default_rng(run.train.seed)
        self.net = build_network(run.model.input_shape, run.model.layers, rng=self.rng)
        self.loss = build_loss(run.loss)
        self.optimizer = build_optimizer(run.optimizer.model_dump(), self.net.named_parameters())
        tc = run.train
        self.steps_per_epoch = math.ceil(len(data.train) / tc.batch_size)
        sched = run.schedule
        spe = self.steps_per_epoch
        self.lr_at: Callable[[int], float] = make_schedule(
            sched.type, run.optimizer.lr,
            total_steps=tc.epochs * spe,
            warmup_steps=int(round(sched.warmup_epochs * spe)),
            step_size=getattr(sched, "every_epochs", 1) * spe,
            gamma=getattr(sched, "gamma", 0.1),
            min_lr=getattr(sched, "min_lr", 0.0),
        )
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps taken
        self.history: list[dict[str, Any]] = []
        self.progress: dict[str, Any] | None = None
        self.permutation: np.ndarray | None = None
        self.stop_reason = "completed"
        if resume is not None:
            self._restore(resume)

    # -- state ------------------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        params = self.net.named_parameters()
        for name, arr in ckpt.weights.items():
            params[name][...] = arr
        self.optimizer.load_state_dict(ckpt.optimizer)
        try:
            self.rng.bit_generator.state = ckpt.rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise CheckpointError(f"{ckpt.source}: damaged generator state ({exc})") from None
        done = ckpt.progress["batch"] if ckpt.progress else 0
        if ckpt.step != ckpt.epoch * self.steps_per_epoch + done:
            raise CheckpointError(
                f"{ckpt.source}: step {ckpt.step} does not fit epoch {ckpt.epoch} with "
                f"{self.steps_per_epoch} steps per epoch; was the training data different?")
        if ckpt.permutation is not None and len(ckpt.permutation) != len(self.data.train):
            raise CheckpointError(
                f"{ckpt.source}: its shuffle covers {len(ckpt.permutation)} images, the training "
                f"set has {len(self.data.train)}")
        self.epoch, self.step = ckpt.epoch, ckpt.step
        self.history = [dict(r) for r in ckpt.history]
        self.progress, self.permutation = ckpt.progress, ckpt.permutation

    def checkpoint(self) -> Checkpoint:
        """The current state, ready to save."""
        return Checkpoint(
            config=self.config,
            weights=self.net.named_parameters(),
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            step=self.step,
            rng_state=self.rng.bit_generator.state,
            history=self.history,
            progress=self.progress,
            permutation=self.permutation,
            name=self.cfg.name,
        )

    def start(self) -> None:
        """Create the run folder (if needed) and write config.yaml."""
        _make_folder(self.run_dir, exist_ok=True)
        write_atomic(self.run_dir / "config.yaml", dump_yaml(self.config).encode())
        if self.history:  # resumed: make the metrics files match the checkpoint
            write_metrics(self.run_dir, self.history)
            at_best = best_epoch(self.history) == self.epoch and self.progress is None
            if at_best and not (self.run_dir / BEST).exists():  # continued in a new folder
                save_checkpoint(self.run_dir / BEST, self.checkpoint())

    # -- loops ------------------------------------------------------------------------------
    def fit(self, callbacks: Callbacks | None = None, stop: StopFlag | None = None
            ) -> dict[str, Any]:
        """Train until train.epochs (or an early stop), then test the best weights.

        Raises TrainingInterrupted (after checkpointing) when `stop` is set, TrainingError on a
        NaN or infinite loss (the last good checkpoint is kept). Returns the summary.
        """
        cb = callbacks or Callbacks()
        tc = self.cfg.run.train
        self.start()
        while self.epoch < tc.epochs:
            with np.errstate(over="ignore", invalid="ignore"):  # a NaN loss is caught below
                row = self._train_epoch(cb, stop)
            self._end_epoch(row)
            cb.on_epoch_end(row)
            reason = self._early_stop()
            if reason:
                self.stop_reason = reason
                break
            if stop is not None and stop.requested and self.epoch < tc.epochs:
                raise TrainingInterrupted(self.run_dir / LAST, self.epoch,
                                          self.steps_per_epoch, self.step)
        return self._finish()

    def _train_epoch(self, cb: Callbacks, stop: StopFlag | None) -> dict[str, Any]:
        from cnncli.data.batches import to_batch

        tc = self.cfg.run.train
        train, bs = self.data.train, tc.batch_size
        n, nb, e = len(train), self.steps_per_epoch, self.epoch + 1
        if self.progress is None:
            self.permutation = self.rng.permutation(n)
            self.progress = {"batch": 0, "loss_sum": 0.0, "correct": 0, "seen": 0,
                             "seconds": 0.0}
        perm, prog = self.permutation, self.progress
        assert perm is not None
        cb.on_epoch_start(e, tc.epochs, nb, prog["batch"])
        t0, before = time.perf_counter(), prog["seconds"]
        for b in range(prog["batch"], nb):
            idx = perm[b * bs:(b + 1) * bs]
            y = train.labels[idx]
            out = self.net.forward(to_batch(train.images[idx]), training=True, rng=self.rng)
            value = self.loss.forward(out, y)
            if not math.isfinite(value):
                raise TrainingError(self._nan_message(value, e, b, nb))
            self.net.backward(self.loss.backward(), input_grad=False)
            self.optimizer.lr = self.lr_at(self.step)
            self.optimizer.step(self.net.named_gradients())
            self.step += 1
            prog["batch"] = b + 1
            prog["loss_sum"] += value * len(y)
            prog["correct"] += int(np.count_nonzero(out.argmax(axis=0) == y))
            prog["seen"] += len(y)
            prog["seconds"] = before + time.perf_counter() - t0
            cb.on_step(e, b + 1, prog["loss_sum"] / prog["seen"], prog["correct"] / prog["seen"],
                       prog["seen"] / max(prog["seconds"], 1e-9))
            if stop is not None and stop.requested and b + 1 < nb:
                save_checkpoint(self.run_dir / LAST, self.checkpoint())
                raise TrainingInterrupted(self.run_dir / LAST, e, b + 1, self.step)
        train_seconds = prog["seconds"]
        row: dict[str, Any] = {
            "epoch": e,
            "lr": self.optimizer.lr,
            "train_loss": prog["loss_sum"] / prog["seen"],
            "train_acc": prog["correct"] / prog["seen"],
            "val_loss": None,
            "val_acc": None,
        }
        if self.data.val is not None:
            val = evaluate(self.net, self.loss, self.data.val, tc.eval_batch_size)
            row["val_loss"], row["val_acc"] = val.loss, val.accuracy
        row["seconds"] = round(before + time.perf_counter() - t0, 3)
        row["images_per_s"] = round(prog["seen"] / max(train_seconds, 1e-9), 1)
        return row

    def _nan_message(self, value: float, epoch: int, batch: int, batches: int) -> str:
        last = self.run_dir / LAST
        kept = (f"the last good checkpoint is {last} (epoch {self.epoch})" if last.exists()
                else "no checkpoint was written before it")
        return (f"loss became {value} in epoch {epoch} at step {self.step + 1} (batch "
                f"{batch + 1} of {batches}); training stopped before applying it and {kept}. "
                "Try a lower learning rate")

    def _end_epoch(self, row: dict[str, Any]) -> None:
        """Record the row, then write best (if it is), last, and the metrics files."""
        from cnncli.checkpoint import checkpoint_bytes

        self.history.append(row)
        self.epoch += 1
        self.progress, self.permutation = None, None
        data = checkpoint_bytes(self.checkpoint())
        if best_epoch(self.history) == self.epoch:
            write_atomic(self.run_dir / BEST, data)
        write_atomic(self.run_dir / LAST, data)
        write_metrics(self.run_dir, self.history)

    def _early_stop(self) -> str | None:
        tc = self.cfg.run.train
        last = self.history[-1]
        if tc.target_accuracy is not None and last["val_acc"] >= tc.target_accuracy:
            return "target_accuracy"
        best = best_epoch(self.history)
        if tc.patience is not None and best is not None and self.epoch - best >= tc.patience:
            return "patience"
        return None

    def _finish(self) -> dict[str, Any]:
        """Test the best weights (a separate network; the trainer's stays as trained), write
        summary.json and return it."""
        best = best_epoch(self.history)
        test = None
        t0 = time.perf_counter()
        # a run continued in a new folder may lack its best epoch's weights: test the last
        weights_file = BEST if (self.run_dir / BEST).exists() else LAST
        if self.data.test is not None and best is not None:
            ckpt, _ = load_checkpoint(self.run_dir / weights_file)
            model = self.cfg.run.model
            net = build_network(model.input_shape, model.layers)
            params = net.named_parameters()
            for name, arr in ckpt.weights.items():
                params[name][...] = arr
            ev = evaluate(net, self.loss, self.data.test, self.cfg.run.train.eval_batch_size)
            test = {"checkpoint": weights_file, "images": len(self.data.test),
                    "accuracy": ev.accuracy, "loss": ev.loss}
        best_row = self.history[best - 1] if best is not None else {}
        train_seconds = sum(r["seconds"] for r in self.history)
        summary = {
            "config": self.cfg.name,
            "epochs": self.epoch,
            "stopped": self.stop_reason,
            "steps": self.step,
            "best_epoch": best,
            "best_val_acc": best_row.get("val_acc"),
            "test": test,
            "train_images": len(self.data.train),
            "val_images": len(self.data.val) if self.data.val is not None else 0,
            # seconds summed over every session of the run (resumes included)
            "train_seconds": round(train_seconds, 3),
            "wall_seconds": round(train_seconds + time.perf_counter() - t0, 3),
        }
        text = json.dumps(summary, indent=2) + "\n"
        write_atomic(self.run_dir / "summary.json", text.encode())
        return summary
