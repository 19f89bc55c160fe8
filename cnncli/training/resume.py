"""Continuing a run from a checkpoint: what may continue where, and whether a checkpoint's
counters fit the run they would continue.

    plan = plan_resume("runs/x/last.safetensors", epochs=20)   # before any data is loaded
    restore(trainer, plan.checkpoint)                           # after the model is built
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnncli.checkpoint import Checkpoint, read_checkpoint
from cnncli.config import LoadedConfig, Override, validate_config
from cnncli.errors import CheckpointError, ConfigError
from cnncli.network import check_state, state_shapes
from cnncli.training.evaluate import config_of
from cnncli.training.folder import LAST, SUMMARY, check_history, check_new_run_dir
from cnncli.training.trainer import Trainer


@dataclass
class ResumePlan:
    """What `cnncli train --resume` continues: the checkpoint, its config and the folder."""

    checkpoint: Checkpoint
    config: LoadedConfig
    run_dir: Path


def plan_resume(path: str | Path, *, epochs: int | None = None, out: Path | None = None
                ) -> ResumePlan:
    """Check a --resume request before any data is loaded or anything is written.

    The run continues in the checkpoint's folder only when the checkpoint is that folder's
    last.safetensors (the run's own latest state). Any other file (best.safetensors, whose
    folder holds a later last.safetensors, or a checkpoint copied somewhere beside files of
    the user's) needs `out`, a new folder: continuing in place would overwrite what is there.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    cfg = config_of(ckpt)
    problem = check_history(ckpt.history)
    if problem:
        raise CheckpointError(f"{path}: damaged metadata ({problem})")
    model = cfg.run.model
    check_state(ckpt.weights, state_shapes(model.input_shape, model.layers), str(path))
    if epochs is not None:
        cfg = validate_config(ckpt.config, source=f"{path} (saved config)", name=cfg.name,
                              overrides=[Override.of("--epochs", "train.epochs", epochs)])
    total = cfg.run.train.epochs
    finished = ckpt.progress is None and ckpt.epoch >= total
    unsummarised = path.name == LAST and out is None and not (path.parent / SUMMARY).exists()
    if finished and not unsummarised:  # killed after its last epoch: resume writes the summary
        raise ConfigError(f"--resume {path}: the run already finished its {ckpt.epoch} "
                          f"epochs; pass --epochs N with N > {ckpt.epoch} to train more")
    if ckpt.epoch + (ckpt.progress is not None) > total and not finished:
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
        return str(read_checkpoint(path).epoch)
    except CheckpointError:
        return "unreadable"


def restore(trainer: Trainer, ckpt: Checkpoint) -> None:
    """Put a checkpoint's state into a freshly built Trainer, after checking it fits.

    Everything is checked before anything is changed: the weights against the model, the
    optimizer state against the optimizer, the step against the epochs and batches, the
    shuffle against the training set, the counters against each other.
    """
    label = ckpt.source
    spe = trainer.steps_per_epoch
    done = ckpt.progress["batch"] if ckpt.progress else 0
    if ckpt.progress is not None and done >= spe:
        raise CheckpointError(f"{label}: its unfinished epoch has {done} batches done of "
                              f"{spe}; was the training data different?")
    if ckpt.step != ckpt.epoch * spe + done:
        raise CheckpointError(
            f"{label}: step {ckpt.step} does not fit epoch {ckpt.epoch} with {spe} steps per "
            "epoch; was the training data different?")
    if ckpt.permutation is not None and len(ckpt.permutation) != len(trainer.data.train):
        raise CheckpointError(
            f"{label}: its shuffle covers {len(ckpt.permutation)} images, the training set has "
            f"{len(trainer.data.train)}")
    if ckpt.progress is not None and ckpt.progress["seen"] > len(trainer.data.train):
        raise CheckpointError(f"{label}: its unfinished epoch saw {ckpt.progress['seen']} "
                              f"images, the training set has {len(trainer.data.train)}")
    saved_step = ckpt.optimizer.get("step")
    if saved_step is not None and (saved_step.shape != () or int(saved_step) != ckpt.step):
        raise CheckpointError(f"{label}: the optimizer counted {saved_step.tolist()} steps, "
                              f"the checkpoint {ckpt.step}")
    if ckpt.history and (ckpt.history[0]["val_acc"] is None) != (trainer.data.val is None):
        raise CheckpointError(f"{label}: its history and the run disagree on whether there "
                              "is a validation set")
    previous = {k: v.copy() for k, v in trainer.net.state().items()}
    trainer.net.load_parameters(ckpt.weights, source=label)
    try:
        trainer.optimizer.load_state_dict(ckpt.optimizer)
    except CheckpointError as exc:
        trainer.net.load_parameters(previous)
        raise CheckpointError(f"{label}: {exc}") from None
    trainer.rng.bit_generator.state = ckpt.rng_state
    trainer.epoch, trainer.step = ckpt.epoch, ckpt.step
    trainer.history = [dict(r) for r in ckpt.history]
    trainer.progress, trainer.permutation = ckpt.progress, ckpt.permutation
