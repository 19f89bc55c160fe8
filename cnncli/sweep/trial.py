"""The two seams a sweep runs through, bound to today's config loader and trainer.

A sweep needs exactly two things from the rest of cnncli, and takes both as parameters:

    resolve_config(base, overrides) -> dict
        the resolved config of base + overrides (every default filled in); ConfigError if
        invalid. The sweep calls it for every trial before any trial starts, and for
        best.yaml.

    train_trial(base, overrides, seed, run_dir, report_epoch) -> summary dict
        one ordinary training in run_dir (a folder of its own, which may already hold a
        run's last.safetensors: then continue from it), calling report_epoch(row) with every
        epoch's metrics row (val_acc among them), the epochs before a resume included. It
        returns the run's summary (best_val_acc, test: {accuracy}, epochs, ...) and raises
        on failure. It runs in a Ray worker process, so it must pickle (a module-level
        function, or an instance like CnncliTrial below) and take its data source along.
        An optional `prepare(base, overrides)` method runs once on the driver before the
        trials start (e.g. to download the dataset once instead of in every trial).

`CnncliTrial` and `resolve_config` below implement them with cnncli.config and cnncli.train.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.errors import quote
from cnncli.sweep.expand import SEED_KEY, Overrides
from cnncli.train import Callbacks

ReportEpoch = Callable[[dict[str, Any]], None]


def _overrides(overrides: Overrides) -> list[Any]:
    from cnncli.config import Override, parse_key_path

    return [Override(parse_key_path(k), v, f"{k}={quote(v)}") for k, v in overrides]


def resolve_config(base: str, overrides: Overrides) -> dict[str, Any]:
    """base (preset or file) + overrides -> the resolved config; ConfigError if invalid."""
    from cnncli.config import load_config

    return load_config(base, _overrides(overrides)).resolved()


@dataclass(frozen=True)
class CnncliTrial:
    """train_trial over cnncli.train's Trainer, with the data options of `cnncli train`.

    data_dir and mirrors are what --data-dir and --mirror give (the data source of every
    trial); a config's data section still applies where they are not given.
    """

    data_dir: str | None = None
    mirrors: tuple[str, ...] = ()

    def __call__(self, base: str, overrides: Overrides, seed: int | None, run_dir: Path,
                 report_epoch: ReportEpoch) -> dict[str, Any]:
        from cnncli.checkpoint import load_checkpoint
        from cnncli.config import load_config
        from cnncli.train import LAST, Trainer, load_dataset

        run_dir = Path(run_dir)
        ckpt = None
        if (run_dir / LAST).is_file():  # an interrupted trial: continue it where it stopped
            ckpt, cfg = load_checkpoint(run_dir / LAST)
        else:
            seeded = [*overrides, *([] if seed is None else [(SEED_KEY, seed)])]
            cfg = load_config(base, _overrides(seeded))
        data = load_dataset(cfg.run, data_dir=self.data_dir, mirrors=self.mirrors)
        trainer = Trainer(cfg, data, run_dir, resume=ckpt)
        for row in trainer.history:  # epochs of an earlier session, so the scheduler sees them
            report_epoch(row)
        return trainer.fit(_EpochReporter(report_epoch))

    def prepare(self, base: str, overrides: Overrides) -> None:
        """Fetch and verify MNIST once on the driver, so the trials find it cached."""
        from cnncli.config import load_config
        from cnncli.data import ensure_files

        run = load_config(base, _overrides(overrides)).run
        if run.data.dataset == "mnist":
            folder = self.data_dir if self.data_dir is not None else run.data.data_dir
            ensure_files(folder, mirrors=[*self.mirrors, *run.data.mirrors])


class _EpochReporter(Callbacks):
    """Trainer callbacks that pass each epoch's metrics row on."""

    def __init__(self, report_epoch: ReportEpoch) -> None:
        self.report_epoch = report_epoch

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.report_epoch(row)


def blas_threads() -> int | None:
    """The number of threads OpenBLAS (numpy's BLAS) uses in this process, None if unknown.

    Reads the loaded OpenBLAS library from /proc/self/maps (Linux) and asks it; a sweep
    records this per trial, to show that every trial ran with the threads it was given.
    """
    import numpy  # noqa: F401  (loads the BLAS library)

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libs = sorted({line.split()[-1] for line in fh
                           if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                       "openblas_get_num_threads"):
            fn = getattr(dll, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None
