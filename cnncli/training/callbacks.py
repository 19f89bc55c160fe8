"""Hooks the training loop calls to report progress; the CLI draws bars and lines with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StartInfo:
    """What a run is about to do, told once before the first step."""

    run_dir: Path
    train_images: int
    val_images: int
    #: the epoch a resumed run continues in (1-based), None for a new run
    resumed_at: int | None
    resumed_from: str | None
    steps_per_epoch: int
    #: the network being trained (read it; changing it changes the run)
    net: Any = None
    #: what the user should hear before training starts (e.g. what --init-from took)
    notes: tuple[str, ...] = ()
    #: the data it trains on, in words ('MNIST', 'idx folder /x (train images sha256 ...)')
    data: str = ""


class Callbacks:
    """The defaults do nothing; subclasses override what they need."""

    def on_start(self, info: StartInfo) -> None:
        """The data is loaded and the model built; training starts next."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        """Epoch `epoch` (1-based) of `epochs` starts; `done` batches ran before a resume."""

    def on_step(self, epoch: int, batch: int, loss: float, accuracy: float,
                images_per_s: float) -> None:
        """`batch` batches of the epoch are done; running mean loss and accuracy so far."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """An epoch finished and was checkpointed; `row` is its metrics row."""

    def on_stop_requested(self) -> None:
        """The first Ctrl-C arrived: the loop stops after this step and checkpoints."""
