"""`cnncli train`: a thin shell over cnncli.training.plan_training / run_training."""

from __future__ import annotations

import sys
from typing import Any

import click

from cnncli.cli import cli
from cnncli.cli.options import (
    config_option,
    data_dir_option,
    mirror_option,
    quiet_option,
    set_option,
)
from cnncli.cli.output import epoch_header, epoch_line, fetching_source, percent, plural

#: the progress bar: what matters first, the bar takes whatever width is left (at least 10
#: cells at 80 columns)
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"


def progress_callbacks(quiet: bool, input_shape: Any, layers: Any) -> Any:
    """Callbacks printing the model table, a tqdm bar per epoch (on a terminal) and one line
    per epoch."""
    from tqdm import tqdm

    from cnncli.network import format_summary
    from cnncli.training import Callbacks, StartInfo

    class Progress(Callbacks):
        def __init__(self) -> None:
            self.bar: Any = None
            self.epochs = 0
            self.started = False
            self.header_shown = False

        def on_start(self, info: StartInfo) -> None:
            self.started = True
            for note in info.notes:
                click.echo(note, err=True)
            if quiet:
                return
            click.echo(format_summary(input_shape, layers))
            action = (f"resuming {info.resumed_from} at epoch {info.resumed_at}"
                      if info.resumed_from else "training")
            if info.data:
                click.echo(f"data: {info.data}")
            click.echo(f"{action}: {plural(info.train_images, 'training image')}, "
                       f"{info.val_images:,} validation")
            click.echo(f"run folder {info.run_dir}")

        def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
            self.epochs = epochs
            if not quiet and sys.stderr.isatty():
                self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}/{epochs}",
                                leave=False, dynamic_ncols=True, file=sys.stderr,
                                bar_format=BAR_FORMAT)

        def on_step(self, epoch: int, batch: int, loss: float, accuracy: float,
                    images_per_s: float) -> None:
            if self.bar is not None:
                self.bar.set_postfix_str(f"loss {loss:.4f} acc {percent(accuracy)} "
                                         f"{images_per_s:,.0f} img/s", refresh=False)
                self.bar.update(1)

        def on_epoch_end(self, row: dict[str, Any]) -> None:
            self.close()
            if not quiet:
                if not self.header_shown:
                    click.echo(epoch_header())
                    self.header_shown = True
                click.echo(epoch_line(row, self.epochs))

        def on_stop_requested(self) -> None:
            self.close()
            click.echo("Ctrl-C: finishing this step, then saving a resumable checkpoint "
                       "(Ctrl-C again to stop at once)", err=True)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


@cli.command()
@config_option(required=False)
@click.option("--resume", type=click.Path(), metavar="CHECKPOINT",
              help="Continue the run saved in this checkpoint (e.g. runs/x/last.safetensors); "
                   "its config travels inside it.")
@click.option("--init-from", type=click.Path(), metavar="CHECKPOINT",
              help="Start from another run's weights (fine-tuning, transfer): tensors matched "
                   "by layer position, type and shape; its optimizer state is not taken.")
@click.option("--init-partial", is_flag=True,
              help="With --init-from: take the tensors that match, skip (and name) the rest.")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Run folder (default runs/<config>-<YYYYmmdd-HHMMSS>); must be new or empty.")
@click.option("--epochs", type=int, metavar="N",
              help="Override train.epochs. With --resume: the new total (the schedule is "
                   "recomputed for it, so a cosine decay is stretched).")
@click.option("--batch-size", type=int, metavar="N", help="Override train.batch_size.")
@click.option("--lr", type=float, metavar="LR", help="Override optimizer.lr.")
@click.option("--seed", type=int, metavar="N", help="Override train.seed.")
@click.option("--limit", type=int, metavar="N",
              help="Train on the first N training images only (quick runs).")
@set_option(help="Override any config value (YAML-parsed), e.g. --set optimizer.lr=3e-4, or "
                 "a whole section: --set 'optimizer={type: sgd, lr: 0.05, momentum: 0.9}'; "
                 "setting a section's type drops the old type's keys (and says so); "
                 "repeatable.")
@data_dir_option
@mirror_option
@click.option("--threads", type=click.IntRange(min=1, max=64), default=None, metavar="N",
              help="Workers running a batch's shards (train.shards) in parallel  [default: "
                   "one per shard, at most one per CPU]. Never changes the results.")
@click.option("--no-report", is_flag=True,
              help="Do not write report.html at the end (it takes a few seconds).")
@quiet_option("No model table, progress bars or epoch lines; only the result.")
@click.pass_context
def train(ctx: click.Context, config_spec: str | None, resume: str | None,
          init_from: str | None, init_partial: bool, out: str | None,
          epochs: int | None, batch_size: int | None, lr: float | None, seed: int | None,
          limit: int | None, overrides: tuple[str, ...], data_dir: str | None,
          mirrors: tuple[str, ...], threads: int | None, no_report: bool, quiet: bool) -> None:
    """Train a network and write a run folder (config, metrics, checkpoints, summary).

    CONFIG is a YAML file or a preset (cnncli config list). Ctrl-C stops after the current
    step, writes a resumable checkpoint and exits with 130; continue with --resume.

    \b
    Examples:
      cnncli train lenet
      cnncli train lenet --epochs 3 --set optimizer.lr=3e-4
      cnncli train lenet --set 'optimizer={type: sgd, lr: 0.05, momentum: 0.9}'
      cnncli train mlp --set schedule.type=constant --seed 1
    """
    from cnncli.config import Override
    from cnncli.training import TrainingInterrupted, plan_training, run_training

    options = [Override.of(opt, key, val) for opt, key, val in (
        ("--batch-size", "train.batch_size", batch_size), ("--lr", "optimizer.lr", lr),
        ("--seed", "train.seed", seed), ("--limit", "train.limit", limit)) if val is not None]
    plan = plan_training(config_spec, [*(Override.parse(s) for s in overrides), *options],
                         resume=resume, out=out, epochs=epochs, init_from=init_from,
                         init_partial=init_partial)
    for note in plan.notes:
        click.echo(note, err=True)
    model = plan.config.run.model
    progress = progress_callbacks(quiet, model.input_shape, model.layers)
    last = plan.run_dir / "last.safetensors"
    try:
        summary = run_training(plan, fetching_source(data_dir, mirrors, quiet), progress,
                               handle_ctrl_c=True, report=not no_report, threads=threads)
    except TrainingInterrupted as exc:
        progress.close()
        if exc.checkpoint is None:
            click.echo("Interrupted before the first step; nothing was written.", err=True)
        else:
            click.echo(f"Interrupted in epoch {exc.epoch} after batch {exc.batch} (step "
                       f"{exc.step}); saved {exc.checkpoint}", err=True)
            click.echo(f"Resume with: cnncli train --resume {exc.checkpoint}", err=True)
        ctx.exit(130)
    except KeyboardInterrupt:  # loading the data, or the second Ctrl-C: files are whole
        progress.close()
        if not progress.started:
            click.echo("Interrupted while loading the data; nothing was written.", err=True)
        else:
            saved = (f"the last checkpoint is {last}; resume with: cnncli train --resume {last}"
                     if last.exists() else "no checkpoint had been written yet")
            click.echo(f"Stopped at once; {saved}", err=True)
        ctx.exit(130)
    finally:
        progress.close()
    test = summary["test"]
    result = (f"test accuracy {percent(test['accuracy'])} (loss {test['loss']:.4f}, "
              f"{test['images']:,} images)" if test else "no test set")
    click.echo(f"{result}, best epoch {summary['best_epoch']} (val "
               f"{percent(summary['best_val_acc'])})")
    click.echo(f"{plural(summary['epochs'], 'epoch')} in {summary['train_seconds']:.0f}s; "
               f"run folder {plan.run_dir}")
    if "report" in summary:
        click.echo(f"report: {summary['report']}")
