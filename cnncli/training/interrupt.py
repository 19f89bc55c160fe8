"""Ctrl-C as a request: the step in flight finishes, then the loop checkpoints and stops."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnncli.errors import CnnError


class TrainingInterrupted(CnnError):
    """Ctrl-C: the current step finished, a resumable checkpoint was written (if any step
    ran; `checkpoint` is None when the run stopped before its first step)."""

    exit_code = 130

    def __init__(self, checkpoint: Path | None, epoch: int, batch: int, step: int) -> None:
        where = (f"resumable checkpoint: {checkpoint}" if checkpoint is not None
                 else "nothing was written")
        super().__init__(f"training interrupted in epoch {epoch} after batch {batch} (step "
                         f"{step}); {where}")
        self.checkpoint, self.epoch, self.batch, self.step = checkpoint, epoch, batch, step


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
