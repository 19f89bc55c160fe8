"""The training loop: epochs of shuffled batches, checkpoints at every epoch's end, early
stopping, and the test of the best weights at the end. Nothing here prints.

One numpy Generator, seeded from `train.seed`, draws the initial weights, then each epoch's
shuffle and every dropout mask, in that order. Its state is saved in every checkpoint, so a
resumed run draws exactly what the uninterrupted run would have drawn: the weights and metrics
of "2 epochs" and "1 epoch, then resume for 1 more" are bit-identical (in the same
environment: the same numpy and BLAS).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.checkpoint import Checkpoint, checkpoint_bytes, read_checkpoint, save_checkpoint
from cnncli.config import LoadedConfig, dump_yaml
from cnncli.data.augment import augment_batch
from cnncli.data.batches import to_batch
from cnncli.data.datasets import DatasetArrays
from cnncli.data.split import Dataset
from cnncli.errors import ConfigError, TrainingError
from cnncli.files import clean_stale_temps, write_atomic
from cnncli.layers.losses import build_loss
from cnncli.network import Network
from cnncli.optim import build_optimizer, build_schedule
from cnncli.parallel import DataParallel
from cnncli.training.callbacks import Callbacks
from cnncli.training.evaluate import Evaluation, evaluate
from cnncli.training.folder import (
    BEST,
    CONFIG,
    LAST,
    RUN_FILES,
    best_epoch,
    make_folder,
    write_metrics,
    write_summary,
)
from cnncli.training.interrupt import StopFlag, TrainingInterrupted


class Trainer:
    """Owns one run's network, loss, optimizer, schedule, generator and progress."""

    def __init__(self, cfg: LoadedConfig, data: Dataset, arrays: DatasetArrays, net: Network,
                 rng: np.random.Generator, run_dir: str | Path, mean: float, std: float,
                 threads: int = 1) -> None:
        run = cfg.run
        self.cfg, self.data, self.net, self.rng = cfg, data, net, rng
        self.run_dir = Path(run_dir)
        self.identity, self.classes = arrays.identity.to_dict(), list(arrays.class_names)
        self.mean, self.std = mean, std
        self.config = cfg.resolved()
        if len(data.train) == 0:
            raise ConfigError("the training set is empty; check --limit and train.val_split")
        for name in ("target_accuracy", "patience"):
            if getattr(run.train, name) is not None and data.val is None:
                raise ConfigError(
                    f"train.{name} needs validation images, but train.val_split "
                    f"{run.train.val_split:g} of {len(data.train):,} training images gives none")
        augment = run.data.augment
        self.augment = augment if augment is not None and augment.active else None
        self.loss = build_loss(run.loss)
        #: workers for the batch's shards (never more than shards); they change no result
        self.threads = max(1, min(threads, run.train.shards))
        #: the shards' runner while fit() runs (one BLAS thread per worker)
        self.par: DataParallel | None = None
        self.optimizer = build_optimizer(run.optimizer, net.named_parameters())
        self.steps_per_epoch = math.ceil(len(data.train) / run.train.batch_size)
        self.lr_at = build_schedule(run.schedule, run.optimizer.lr, self.steps_per_epoch,
                                    run.train.epochs)
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps taken
        self.history: list[dict[str, Any]] = []
        self.progress: dict[str, Any] | None = None
        self.permutation: np.ndarray | None = None
        self.stop_reason = "completed"
        #: the test set scored with the best weights, once finish() ran
        self.test_evaluation: Evaluation | None = None

    def checkpoint(self) -> Checkpoint:
        """The current state, ready to save."""
        return Checkpoint(
            config=self.config, weights=self.net.state(), optimizer=self.optimizer.state_dict(),
            epoch=self.epoch, step=self.step, rng_state=self.rng.bit_generator.state,
            history=self.history, progress=self.progress, permutation=self.permutation,
            name=self.cfg.name, data=self.identity, classes=self.classes, mean=self.mean,
            std=self.std)

    def start(self) -> None:
        """Create the run folder (if needed) and write config.yaml."""
        make_folder(self.run_dir, exist_ok=True)
        clean_stale_temps(self.run_dir, RUN_FILES)  # what a killed earlier session left
        write_atomic(self.run_dir / CONFIG, dump_yaml(self.config).encode())
        if self.history:  # resumed: make the metrics files match the checkpoint
            write_metrics(self.run_dir, self.history)
            at_best = best_epoch(self.history) == self.epoch and self.progress is None
            if at_best and not (self.run_dir / BEST).exists():  # continued in a new folder
                save_checkpoint(self.run_dir / BEST, self.checkpoint())

    def fit(self, callbacks: Callbacks | None = None, stop: StopFlag | None = None
            ) -> dict[str, Any]:
        """Train until train.epochs (or an early stop), then test the best weights.

        Raises TrainingInterrupted (after checkpointing) when `stop` is set, TrainingError on a
        NaN or infinite loss (the last good checkpoint is kept). Returns the summary.
        """
        cb = callbacks or Callbacks()
        tc = self.cfg.run.train
        self.start()
        with DataParallel(self.net, self.loss, shards=tc.shards, threads=self.threads,
                          optimizer=self.optimizer) as par:
            self.par = par
            while self.epoch < tc.epochs:
                with np.errstate(over="ignore", invalid="ignore"):  # a NaN loss: caught below
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
            try:
                return self.finish()
            finally:
                self.par = None

    def _train_epoch(self, cb: Callbacks, stop: StopFlag | None) -> dict[str, Any]:
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
            images = train.images[idx]
            if self.augment is not None:  # drawn from the run's generator: resume stays exact
                images = augment_batch(images, self.augment, self.rng)
            x = to_batch(images, mean=self.mean, std=self.std)
            assert self.par is not None
            result = self.par.train_step(x, y, self.rng)  # every shard: forward, loss, backward
            value, out = result.loss, result.logits
            if not math.isfinite(value):
                raise TrainingError(self._nan_message(value, e, b, nb))
            self.optimizer.lr = self.lr_at(self.step)
            self.par.optimizer_step(self.optimizer)  # optimizer.step(grads), on the workers too
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
            "epoch": e, "lr": self.optimizer.lr,
            "train_loss": prog["loss_sum"] / prog["seen"],
            "train_acc": prog["correct"] / prog["seen"],
            "val_loss": None, "val_acc": None,
        }
        if self.data.val is not None:
            val = evaluate(self.net, self.loss, self.data.val, tc.eval_batch_size, self.mean,
                           self.std, self.par.forward if self.par is not None else None)
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

    def finish(self) -> dict[str, Any]:
        """Test the best weights, write summary.json and return it.

        The network is loaded with the best epoch's weights for the test (the run is over, so
        nothing needs the last ones any more).
        """
        best = best_epoch(self.history)
        test = None
        t0 = time.perf_counter()
        # a run continued in a new folder may lack its best epoch's weights: test the last
        weights_file = BEST if (self.run_dir / BEST).exists() else LAST
        if self.data.test is not None and best is not None:
            self.net.load_parameters(read_checkpoint(self.run_dir / weights_file).weights,
                                     source=str(self.run_dir / weights_file))
            ev = evaluate(self.net, self.loss, self.data.test, self.cfg.run.train.eval_batch_size,
                          self.mean, self.std, self.par.forward if self.par is not None else None)
            self.test_evaluation = ev
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
        write_summary(self.run_dir, summary)
        return summary
