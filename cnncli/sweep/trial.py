"""The two seams a sweep runs through, bound to cnncli.config and cnncli.training.

A sweep needs exactly two things from the rest of cnncli, and takes both as parameters:

    resolve_config(base, overrides) -> dict
        the resolved config of base + overrides (every default filled in); ConfigError if
        invalid. The sweep calls it for every trial before any trial starts, and for
        best.yaml.

    train_trial(base, overrides, seed, run_dir, report_epoch) -> summary dict
        one ordinary training in run_dir (a folder of its own, which may already hold a
        run's last.safetensors: then continue from it), calling report_epoch(row) with every
        epoch's metrics row (val_acc among them), the epochs before a resume included. It
        returns the run's summary (best_val_acc, test: {accuracy}, epochs, ...; optionally
        data and cnncli, what produced it) and raises on failure. It runs in a Ray worker
        process, so it must pickle (a module-level function, or an instance like CnncliTrial
        below) and take its data source along.
        An optional `prepare(base, overrides)` method runs on the driver before the trials
        start, once per distinct data section (e.g. to download a dataset once instead of in
        every trial).

`CnncliTrial` trains exactly as `cnncli train` does (plan_training, then run_training), and
continues an interrupted trial as `cnncli train --resume RUN/last.safetensors` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.config import Override
from cnncli.errors import quote
from cnncli.sweep.expand import SEED_KEY, Overrides, Trial
from cnncli.training.callbacks import Callbacks
from cnncli.training.folder import LAST, SUMMARY

ReportEpoch = Callable[[dict[str, Any]], None]


def config_overrides(overrides: Overrides) -> list[Override]:
    """[('optimizer.lr', 0.001)] -> the Overrides of cnncli.config, each labelled as the sweep
    wrote it ('optimizer.lr=0.001'), so a config error names the value that set it."""
    return [Override.of(f"{k}={quote(v)}", k, v) for k, v in overrides]


def resolve_config(base: str, overrides: Overrides) -> dict[str, Any]:
    """base (preset or file) + overrides -> the resolved config; ConfigError if invalid."""
    from cnncli.config import load_config

    return load_config(base, config_overrides(overrides)).resolved()


@dataclass(frozen=True)
class CnncliTrial:
    """train_trial as `cnncli train` runs a training, with its data options.

    data_dir and mirrors are what --data-dir and --mirror give (the data source of every
    trial); a config's data section still applies where they are not given. `threads` is the
    trial's workers (train.shards run on them), each with one BLAS thread: run_sweep sets it
    to the sweep's cpus_per_trial. `report` writes each trial's report.html, as `cnncli
    train` does. `progress` and `notify` are cnncli.data's hooks for the driver's `prepare`
    only (byte bars, "fetched ..." lines); they are not shipped to the workers.
    """

    data_dir: str | None = None
    mirrors: tuple[str, ...] = ()
    threads: int = 1
    report: bool = True
    progress: Any = field(default=None, compare=False)
    notify: Any = field(default=None, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # the driver's terminal hooks stay on the driver
        return {**self.__dict__, "progress": None, "notify": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, base: str, overrides: Overrides, seed: int | None, run_dir: Path,
                 report_epoch: ReportEpoch) -> dict[str, Any]:
        from cnncli.data.source import FetchingSource
        from cnncli.training import plan_training, run_training

        run_dir = Path(run_dir)
        summary = _finished_summary(run_dir)
        if summary is not None:  # trained to the end, but the sweep did not record it
            for row in _history(run_dir):
                report_epoch(row)
            return {**summary, **inputs_of(run_dir)}
        last = run_dir / LAST
        if last.is_file():  # an interrupted trial: continue it where it stopped, as
            plan = plan_training(resume=last)  # `cnncli train --resume RUN/last...` does
            assert plan.resume is not None
            for row in plan.resume.history:  # earlier epochs, so the scheduler sees them
                report_epoch(row)
        else:
            _clear_partial_run(run_dir)
            seeded = [*overrides, *([] if seed is None else [(SEED_KEY, seed)])]
            plan = plan_training(base, config_overrides(seeded), out=run_dir)
        source = FetchingSource(data_dir=self.data_dir, mirrors=self.mirrors)
        summary = run_training(plan, source, _EpochReporter(report_epoch), report=self.report,
                               threads=self.threads)
        return {**summary, **inputs_of(run_dir)}

    def prepare(self, base: str, overrides: Overrides) -> None:
        """Fetch and verify a registered dataset once on the driver, through the same source
        the trials use, so they find it cached (an idx folder is left to the trials: a
        missing one fails only them)."""
        from cnncli.config import load_config
        from cnncli.data.source import FetchingSource

        data = load_config(base, config_overrides(overrides)).run.data
        if data.dataset != "idx":
            FetchingSource(data_dir=self.data_dir, mirrors=self.mirrors, progress=self.progress,
                           report=self.notify).load(data)


def inputs_of(run_dir: Path) -> dict[str, str]:
    """What a trained run folder says produced it, for the sweep's row: {"data": which data, by
    hash; "cnncli": the version that trained it} (read from its last checkpoint)."""
    from cnncli.checkpoint import read_checkpoint
    from cnncli.data.datasets import FILE_NAMES, DataIdentity

    ckpt = read_checkpoint(run_dir / LAST)
    identity = DataIdentity.from_dict(ckpt.data)
    sha = identity.files[FILE_NAMES[0]][:12]
    data = identity.describe() if identity.dataset == "idx" else (
        f"{identity.describe()} (train images sha256 {sha})")
    return {"data": data, "cnncli": ckpt.version}


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's summary.json, if its training ended (written after the last epoch)."""
    try:
        summary = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs a finished run folder recorded (metrics.jsonl)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _clear_partial_run(run_dir: Path) -> None:
    """A trial stopped before its first checkpoint restarts from scratch: remove what that
    start wrote (a run's own files and its dead temporaries), so the folder is new again.
    Anything else stays, and plan_training then refuses the folder, naming it. The folder's
    lock is taken first: a process still training there is never pulled from under."""
    from cnncli.files import clean_stale_temps
    from cnncli.training.folder import RUN_FILES, RunLock

    if not run_dir.is_dir():
        return
    lock = RunLock(run_dir)  # TrainingError if another process trains in it
    try:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        clean_stale_temps(run_dir, RUN_FILES)
    finally:
        lock.release()


class _EpochReporter(Callbacks):
    """Training callbacks that pass each epoch's metrics row on."""

    def __init__(self, report_epoch: ReportEpoch) -> None:
        self.report_epoch = report_epoch

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.report_epoch(row)


def distinct_data(trials: Sequence[Trial], configs: Sequence[dict[str, Any]]) -> list[Trial]:
    """The first trial with each distinct data section (of its resolved config), in order."""
    seen: dict[str, Trial] = {}
    for trial, cfg in zip(trials, configs, strict=True):
        seen.setdefault(json.dumps(cfg.get("data"), sort_keys=True, default=repr), trial)
    return list(seen.values())


def blas_threads() -> int | None:
    """The threads numpy's BLAS uses in this process (threadpoolctl), None if unknown; a sweep
    records it per trial, to show that every trial ran with the threads it was given."""
    from cnncli.parallel import blas_info

    counts = [i["num_threads"] for i in blas_info() if i.get("num_threads")]
    return max(counts) if counts else None
