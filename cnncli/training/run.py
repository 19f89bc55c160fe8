"""A training run as one library call: plan it (config, folder, resume), then run it.

    plan = plan_training("lenet", overrides=["train.epochs=3"])      # or resume="runs/x/last..."
    summary = run_training(plan, FetchingSource(), callbacks, stop)

`plan_training` checks everything it can before any data is loaded (the config, the resume
rules) and reserves the run folder; `run_training` loads the data from the source it is given,
builds the model once and trains. The CLI is a thin shell over these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.checkpoint import Checkpoint, read_checkpoint
from cnncli.config import LoadedConfig, Override, load_config
from cnncli.config.load import check_outputs
from cnncli.data.datasets import DataIdentity, DatasetArrays, pixel_mean_std
from cnncli.data.source import DataSource
from cnncli.data.split import make_dataset, split_indices
from cnncli.errors import ConfigError, DataError
from cnncli.network import build_model, infer_shapes, state_shapes
from cnncli.training.callbacks import Callbacks, StartInfo
from cnncli.training.folder import RunLock, remove_if_empty, reserve_run_dir
from cnncli.training.interrupt import StopFlag, TrainingInterrupted, deferred_interrupt
from cnncli.training.resume import plan_resume, restore
from cnncli.training.trainer import Trainer


@dataclass
class TrainPlan:
    """What a training run will do, checked: the config, the folder, what it resumes."""

    config: LoadedConfig
    run_dir: Path
    resume: Checkpoint | None = None
    #: whether the folder was created for this run (removed again if nothing gets written)
    created: bool = False
    notes: tuple[str, ...] = field(default=())
    #: start from this checkpoint's weights (fine-tuning); its optimizer state is not taken
    init_from: Checkpoint | None = None
    #: with init_from: take the tensors that match and skip the others (else refuse)
    init_partial: bool = False
    #: the run folder's lock, held from planning to the end of the run (None: not locked)
    lock: RunLock | None = None


def plan_training(config: str | None = None, overrides: Sequence[Override | str] = (), *,
                  resume: str | Path | None = None, out: str | Path | None = None,
                  epochs: int | None = None, init_from: str | Path | None = None,
                  init_partial: bool = False) -> TrainPlan:
    """Check a training request and reserve its run folder; nothing else is written.

    A new run needs `config` (a file or preset) and may take overrides; a resumed run takes
    only `epochs` (its config travels in the checkpoint) and `out` (a new folder).
    """
    out_path = Path(out) if out is not None else None
    if init_partial and init_from is None:
        raise ConfigError("--init-partial needs --init-from CHECKPOINT")
    if resume is not None and init_from is not None:
        raise ConfigError("--init-from cannot be combined with --resume: a resumed run "
                          "continues from its own checkpoint")
    if resume is not None:
        if config is not None or overrides:
            first = overrides[0] if overrides else None
            option = ("--config" if config is not None else
                      first.source.split()[0] if isinstance(first, Override) else "--set")
            raise ConfigError(f"{option} cannot be combined with --resume: a resumed run keeps "
                              "its saved config (only --epochs, --data-dir and --mirror may "
                              "change)")
        rp = plan_resume(resume, epochs=epochs, out=out_path)
        if out_path is not None:
            run_dir, created, lock = reserve_run_dir(out_path, rp.config.name)
        else:
            run_dir, created, lock = rp.run_dir, False, RunLock(rp.run_dir)
        return TrainPlan(rp.config, run_dir, rp.checkpoint, created, lock=lock)
    if config is None:
        raise ConfigError("train needs a config (e.g. cnncli train lenet, or --config "
                          "FILE|PRESET) or --resume CHECKPOINT; presets: cnncli config list")
    extra = [Override.of("--epochs", "train.epochs", epochs)] if epochs is not None else []
    cfg = load_config(config, [*overrides, *extra])
    start = None
    if init_from is not None:
        from cnncli.training.evaluate import find_checkpoint

        start = read_checkpoint(find_checkpoint(init_from))
        model = cfg.run.model
        matching_state(start, state_shapes(model.input_shape, model.layers),
                       [s.type for s in model.layers], init_partial)  # refuse before any write
    run_dir, created, lock = reserve_run_dir(out_path, cfg.name)
    return TrainPlan(cfg, run_dir, None, created, cfg.notes, start, init_partial, lock)


def matching_state(ckpt: Checkpoint, expected: dict[str, tuple[tuple[int, ...], Any]],
                   types: Sequence[str], partial: bool) -> tuple[dict[str, np.ndarray],
                                                                 list[str]]:
    """The checkpoint's tensors that fit the new model by layer position, layer type, shape
    and dtype -> (those tensors, one line per tensor of the model that gets none). Unless
    `partial`, any misfit is one ConfigError listing them all."""
    try:
        old_types = [layer["type"] for layer in ckpt.config["model"]["layers"]]
    except (KeyError, TypeError):
        old_types = []
    taken, skipped = {}, []
    for name, (shape, dtype) in expected.items():
        i = int(name.split(".")[1])
        old = old_types[i] if i < len(old_types) else None
        arr = ckpt.weights.get(name)
        if old != types[i]:
            skipped.append(f"{name} (layer {i} is {types[i]} here, "
                           f"{old or 'absent'} in the checkpoint)")
        elif arr is None:
            skipped.append(f"{name} (not in the checkpoint)")
        elif arr.shape != tuple(shape) or arr.dtype != dtype:
            skipped.append(f"{name} (shape {tuple(shape)} here, {arr.shape} in the checkpoint)")
        else:
            taken[name] = arr
    if skipped and not partial:
        raise ConfigError(f"--init-from {ckpt.source}: {len(skipped)} of {len(expected)} tensors "
                          f"do not match: {'; '.join(skipped)}; pass --init-partial to take the "
                          f"{len(taken)} that do")
    return taken, skipped


def check_image_size(arrays: DatasetArrays, input_shape: Sequence[int], where: str) -> None:
    """The images (N, H, W) must match the model's input_shape [1, H, W]; ConfigError if not."""
    for images in (arrays.train_images, arrays.test_images):
        if images is None:
            continue
        h, w = images.shape[1:]
        if [1, h, w] != list(input_shape):
            raise ConfigError(f"{where}: the images are {h}x{w}, but model.input_shape is "
                              f"{list(input_shape)}; set it to [1, {h}, {w}]")


def run_training(plan: TrainPlan, source: DataSource, callbacks: Callbacks | None = None,
                 stop: StopFlag | None = None, *, handle_ctrl_c: bool = False,
                 report: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Load the data, build the model once, train in the planned folder -> the summary.

    `stop` asks the loop to stop after the current step (it checkpoints, then raises
    TrainingInterrupted). With `handle_ctrl_c`, the first Ctrl-C once training has started
    sets such a request (callbacks.on_stop_requested hears of it) and a second one raises
    KeyboardInterrupt at once; a Ctrl-C while the data loads is a plain KeyboardInterrupt.
    A folder made for this run is removed again if the run ends before writing anything.
    With `report`, the run's report.html is written at the end (from the trained network and
    the test evaluation already made: nothing is rebuilt or scored twice); its path is the
    summary's "report" entry. `threads` is how many workers run the batch's shards (default:
    as many as there are shards and CPUs); it changes the speed, never the result.
    """
    try:
        return _run(plan, source, callbacks or Callbacks(), stop, handle_ctrl_c, report,
                    threads if threads is not None else default_threads())
    finally:
        if plan.created:
            remove_if_empty(plan.run_dir)
        if plan.lock is not None:
            plan.lock.release()


def default_threads() -> int:
    """The CPUs this process may use (the workers are capped by the shards anyway)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def _run(plan: TrainPlan, source: DataSource, cb: Callbacks, stop: StopFlag | None,
         handle_ctrl_c: bool, report: bool, threads: int) -> dict[str, Any]:
    run = plan.config.run
    ckpt = plan.resume
    expected = DataIdentity.from_dict(ckpt.data) if ckpt is not None else None
    arrays = source.load(run.data, expected)
    if expected is not None and not arrays.identity.same_data(expected):
        raise DataError(f"--resume needs the data the run was trained on "
                        f"({expected.describe()}), this is {arrays.identity.describe()}")
    check_image_size(arrays, run.model.input_shape, arrays.identity.folder or
                     arrays.identity.describe())
    shapes = infer_shapes(run.model.input_shape, run.model.layers)
    try:
        check_outputs(shapes[-1], arrays.num_classes, arrays.identity.describe())
    except ConfigError as exc:
        raise exc.located(source=plan.config.source) from None
    data = make_dataset(arrays.train_images, arrays.train_labels, arrays.test_images,
                        arrays.test_labels, run.train.val_split, run.train.limit)
    if ckpt is not None:
        mean, std = ckpt.mean, ckpt.std
    elif arrays.mean is not None and arrays.std is not None:
        mean, std = arrays.mean, arrays.std
    else:  # an idx folder: the training split's own pixel statistics
        train_idx, _ = split_indices(len(arrays.train_labels), run.train.val_split)
        mean, std = pixel_mean_std(arrays.train_images[train_idx])
    rng = np.random.default_rng(run.train.seed)
    net = build_model(run.model.input_shape, run.model.layers, rng=rng)
    if plan.init_from is not None:
        start = plan.init_from
        expected = {k: (v.shape, v.dtype) for k, v in net.state().items()}
        taken, skipped = matching_state(start, expected, [s.type for s in run.model.layers],
                                        plan.init_partial)
        state = net.state()
        for name, arr in taken.items():
            state[name][...] = arr
        start_notes = [f"--init-from {start.source}: took {len(taken)} of {len(expected)} "
                       "tensors" + (f"; skipped {'; '.join(skipped)}" if skipped else "")]
    else:
        start_notes = []
    trainer = Trainer(plan.config, data, arrays, net, rng, plan.run_dir, mean, std, threads)
    if ckpt is not None:
        restore(trainer, ckpt)
    if stop is not None and stop.requested:
        raise TrainingInterrupted(None, trainer.epoch + 1, 0, trainer.step)
    cb.on_start(StartInfo(plan.run_dir, len(data.train), len(data.val) if data.val else 0,
                          ckpt.epoch + 1 if ckpt else None, ckpt.source if ckpt else None,
                          trainer.steps_per_epoch, net, tuple(start_notes),
                          arrays.identity.describe()))
    if not handle_ctrl_c:
        summary = trainer.fit(cb, stop)
    else:
        with deferred_interrupt(cb.on_stop_requested) as flag:
            if stop is not None:
                flag.requested = stop.requested
            summary = trainer.fit(cb, flag)
    if report and trainer.test_evaluation is not None and data.test is not None:
        from cnncli.visualize import report_after_training

        summary = {**summary, "report": str(report_after_training(trainer, data.test.images))}
    return summary
