"""Run folders and the files in them: reserving the folder, the metrics files, the summary.

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
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from cnncli.errors import ConfigError, TrainingError
from cnncli.files import write_atomic

LAST, BEST, SUMMARY, CONFIG = "last.safetensors", "best.safetensors", "summary.json", "config.yaml"
#: held (flock) by the process training in a folder; a second one is refused at once
LOCK = ".cnncli-run.lock"
#: every file a run writes (atomically, through temporary files that a kill may leave behind)
RUN_FILES = (LAST, BEST, SUMMARY, CONFIG, "metrics.jsonl", "metrics.csv", "report.html",
             "curves.png", "confusion.png", "mistakes.png", "filters.png", "activations.png")
#: the fields of a metrics row (one per epoch: the history, metrics.jsonl and metrics.csv)
METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                 "images_per_s")


def default_run_dir(name: str, now: datetime | None = None) -> Path:
    """runs/<config name>-<YYYYmmdd-HHMMSS> (relative to the working folder)."""
    return Path("runs") / f"{name}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


class RunLock:
    """An exclusive lock on a run folder for as long as one process trains in it (fcntl.flock
    on LOCK: released by the kernel if the process dies, so a SIGKILL never leaves the folder
    locked)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.fd = folder, None
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the folder checks still apply
            return
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except OSError as exc:
            raise TrainingError(f"run folder {folder}: cannot be locked ({exc.strerror})"
                                ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise TrainingError(f"run folder {folder}: another cnncli process is training in "
                                "it; wait for it to end or choose another --out") from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _entries(path: Path) -> list[str]:
    """What a folder holds, but for the run lock."""
    return [p.name for p in path.iterdir() if p.name != LOCK]


def check_new_run_dir(path: Path) -> None:
    """A run never writes into an existing non-empty folder; ConfigError if `path` is one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a folder")
    if path.is_dir() and _entries(path):
        hint = (f"; to continue it: cnncli train --resume {path / LAST}"
                if (path / LAST).exists() else "")
        raise ConfigError(f"--out {path}: folder exists and is not empty; choose another "
                          f"--out{hint}")


def make_folder(path: Path, exist_ok: bool) -> None:
    """mkdir -p; TrainingError naming the folder when it cannot be made."""
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
                    ) -> tuple[Path, bool, RunLock]:
    """Create and lock the run folder before any data is loaded -> (folder, whether it was
    made here, its lock).

    `out` must be new or empty (check_new_run_dir), checked again once it is locked: of two
    runs started with the same --out, exactly one gets it and the other fails at once.
    Without `out` the folder is runs/<name>-<timestamp>, or that name with -2, -3, ... when
    another run started in the same second (each made with exist_ok=False). A folder made
    here that is still empty when the command ends can be removed with remove_if_empty.
    """
    if out is not None:
        check_new_run_dir(out)
        created = not out.exists()
        make_folder(out, exist_ok=True)
        lock = RunLock(out)
        try:
            check_new_run_dir(out)
        except ConfigError:
            lock.release()
            raise
        return out, created, lock
    base = default_run_dir(name, now)
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            make_folder(path, exist_ok=False)
            return path, True, RunLock(path)
        except FileExistsError:
            continue
    raise TrainingError(f"run folder {base}: 999 runs named like it exist; pass --out DIR")


def remove_if_empty(path: Path) -> None:
    """Remove a folder that holds nothing but the run lock (a run that failed before writing
    anything)."""
    try:
        if not _entries(path):
            (path / LOCK).unlink(missing_ok=True)
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


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json, atomically."""
    write_atomic(run_dir / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())


def check_history(history: list[dict[str, Any]]) -> str | None:
    """What is wrong with saved metrics rows (each needs every METRIC_FIELDS value, numbers,
    validation ones may be null), or None."""
    for row in history:
        if not all(k in row for k in METRIC_FIELDS):
            return f"a history row lacks one of {', '.join(METRIC_FIELDS)}"
        if not all(isinstance(row[k], (int, float)) and math.isfinite(row[k])
                   or (row[k] is None and k.startswith("val_")) for k in METRIC_FIELDS):
            return "a history row holds a value that is not a number"
    if len({row["val_acc"] is None for row in history}) > 1:
        return "history rows disagree on whether there is a validation set"
    return None


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch with the highest validation accuracy (the first on ties); the last epoch when
    there is no validation set; None before the first epoch."""
    if not history:
        return None
    if history[0].get("val_acc") is None:
        return int(history[-1]["epoch"])
    best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
    return int(best["epoch"])
