"""The cnncli command line: one Click group, one function per command.

This is the only module that prints or exits. The library raises CnnError
kinds; `CnnGroup.invoke` turns them into one-line `Error: ...` messages with
the error's exit code (2 for config/usage, 1 for runtime faults).

Heavy modules (numpy, pydantic, ...) are imported inside the commands so that
`cnncli --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from cnncli import __version__
from cnncli.errors import CnnError


class CnnClickError(click.ClickException):
    """A ClickException that keeps the CnnError's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        # one line, whatever the message quotes (a YAML key may hold a line break)
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
        self.exit_code = exit_code


class CnnGroup(click.Group):
    """A group whose commands' CnnErrors become clean one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            raise CnnClickError(str(exc), exc.exit_code) from None
        except OSError as exc:  # a disk or file-system fault the library did not foresee
            where = f"{exc.filename}: " if exc.filename else ""
            raise CnnClickError(f"{where}{exc.strerror or exc}", 1) from None
        except MemoryError as exc:  # e.g. a layer of 10^11 units, a batch of 10^12 images
            raise CnnClickError(f"out of memory: {exc or 'an allocation failed'}", 1) from None
        except UnicodeError as exc:  # e.g. a path holding characters the file system refuses
            raise CnnClickError(f"cannot encode or decode text: {exc}", 1) from None
        except KeyboardInterrupt:  # Ctrl-C before a command set up its own handling
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=CnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnncli")
def cli() -> None:
    """Train and check convolutional networks on MNIST with hand-written NumPy backprop."""


def main() -> None:
    """Console-script entry point."""
    cli()


# -- engine: summary, gradcheck ---------------------------------------------------------------

def _load_config(spec: str, overrides: tuple[str, ...] = ()) -> Any:
    """A validated run config from a path or preset name (ConfigError on any problem)."""
    from cnncli.config import load_config

    return load_config(spec, overrides)


@cli.command()
@click.option("--config", "config_spec", required=True, metavar="FILE|PRESET",
              help="A YAML config file, or the name of a bundled preset such as 'lenet'.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override one config value (YAML-parsed); repeatable.")
def summary(config_spec: str, overrides: tuple[str, ...]) -> None:
    """Print the network's layers, output shapes and parameter counts."""
    from cnncli.network import build_network, format_summary

    cfg = _load_config(config_spec, overrides)
    net = build_network(cfg.model.input_shape, cfg.model.layers)
    click.echo(format_summary(net))


def _finite(param: click.Parameter, value: float) -> float:
    """A float option must be finite: FloatRange lets NaN through (NaN fails every <)."""
    import math

    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.", param=param)
    return value


@cli.command()
@click.option("--config", "config_spec", default=None, metavar="FILE|PRESET",
              help="Check this network (at its input shape, small random batch) instead of "
                   "the built-in suite.")
@click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(min=0, min_open=True),
              callback=lambda ctx, param, value: _finite(param, value),
              help="Largest relative error that passes.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed for the random data.")
@click.option("--batch", default=2, show_default=True, type=click.IntRange(min=1),
              help="Batch size of the random input (with --config).")
@click.option("--samples", default=64, show_default=True, type=click.IntRange(min=1),
              help="Entries checked per tensor, chosen at random (with --config).")
def gradcheck(config_spec: str | None, tol: float, seed: int, batch: int, samples: int) -> None:
    """Compare every analytic gradient with finite differences in float64.

    With no --config, checks every registered layer type in several configurations, both
    losses and two small whole networks. Exits 0 only if every row passes.
    """
    from cnncli import gradcheck as gc

    if config_spec is None:
        results = gc.run_default_checks(seed=seed, tol=tol)
    else:
        cfg = _load_config(config_spec)
        results = gc.check_model(cfg.model.input_shape, cfg.model.layers, cfg.loss, seed=seed,
                                 tol=tol, batch=batch, limit=samples, name=config_spec)
    width = max(len(r.name) for r in results)
    click.echo(f"{'check':<{width}}  {'max rel error':>13}  result  worst")
    for r in results:
        verdict = "pass" if r.passed else "FAIL"
        click.echo(f"{r.name:<{width}}  {r.max_rel_error:>13.2e}  {verdict:<6}  {r.worst}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed (tolerance {tol:g})")
    if failed:
        raise SystemExit(1)


# -- configs: config show, config schema -------------------------------------------------------

@cli.group("config")
def config_group() -> None:
    """Inspect run configs: the resolved values, or the JSON schema for editors."""


@config_group.command("show")
@click.option("--config", "config_spec", required=True, metavar="FILE|PRESET",
              help="A YAML config file, or the name of a bundled preset such as 'lenet'.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override one config value (YAML-parsed); repeatable.")
def config_show(config_spec: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved config as YAML: every default filled in, overrides applied."""
    from cnncli.config import dump_yaml

    click.echo(dump_yaml(_load_config(config_spec, overrides).resolved()), nl=False)


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of config files (point your editor's YAML support at it)."""
    import json

    from cnncli.config import config_schema as schema

    click.echo(json.dumps(schema(), indent=2))


# -- speed: bench -------------------------------------------------------------------------------

@cli.command()
@click.option("--config", "config_spec", required=True, metavar="FILE|PRESET",
              help="A YAML config file, or the name of a bundled preset such as 'lenet'.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override one config value (YAML-parsed); repeatable.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Training batch size to time.  [default: the config's train.batch_size]")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=1),
              help="Timed training steps (after 5 warm-up steps); figures are medians.")
@click.option("--eval-batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Batch size of the timed inference passes.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed for the weights and the synthetic data.")
@click.option("--threads", default=None, type=click.IntRange(min=1, max=64),
              help="Threads (= cores) for the training step and inference.  [default: 2, "
                   "or 1 on a 1-core machine]")
@click.option("--shards", default=None, type=click.IntRange(min=1),
              help="Shards each training batch is cut into.  [default: --threads]")
@click.option("--json", "as_json", is_flag=True,
              help="Print the figures as one JSON object instead of a table.")
def bench(config_spec: str, overrides: tuple[str, ...], batch_size: int | None, steps: int,
          eval_batch_size: int, seed: int, threads: int | None, shards: int | None,
          as_json: bool) -> None:
    """Time every layer's forward and backward pass, a training step and inference.

    Runs on random data shaped like the config's input (no download needed), with the
    config's loss and optimizer. Like `caffe time`: milliseconds per batch for each layer,
    then training and inference images per second.
    """
    import json
    import os

    from cnncli.bench import format_result, run_benchmark

    cfg = _load_config(config_spec, overrides)
    result = run_benchmark(
        cfg.model.input_shape, cfg.model.layers, cfg.loss, cfg.optimizer.model_dump(),
        batch_size=batch_size or cfg.train.batch_size, steps=steps,
        eval_batch_size=eval_batch_size, seed=seed,
        threads=threads or min(2, os.cpu_count() or 1), shards=shards,
    )
    if as_json:
        click.echo(json.dumps({"config": config_spec, **result.to_dict()}, indent=2))
    else:
        click.echo(format_result(result, config_spec))


# -- data: download, info ---------------------------------------------------------------------

# no envvar= here: $CNNCLI_DATA_DIR is read by cnncli.data.resolve_data_dir, after a config's
# data.data_dir, so that the variable never overrides what a config file says
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="Where the data is (MNIST's cache, or an idx dataset's folder). [default: the "
         "config's data.data_dir, else $CNNCLI_DATA_DIR, else ~/.cache/cnncli/mnist]")
mirror_option = click.option(
    "--mirror", "mirrors", multiple=True, metavar="URL|DIR",
    help="A mirror to try first: http(s)://, file:// or a folder; repeatable "
         "(also $CNNCLI_MIRROR).")


def make_byte_progress(quiet: bool) -> Any:
    """A ProgressFactory drawing tqdm byte bars on stderr (none when quiet or not a tty)."""
    import sys

    from tqdm import tqdm

    if quiet or not sys.stderr.isatty():
        return None

    def factory(desc: str, total: int | None) -> Any:
        return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    leave=False, file=sys.stderr)

    return factory


def make_reporter(quiet: bool) -> Any:
    """A cnncli.data Reporter echoing each line to stderr (None when quiet)."""
    if quiet:
        return None

    def report(line: str) -> None:
        click.echo(line, err=True)

    return report


@cli.group("data")
def data_group() -> None:
    """Download, verify and inspect the MNIST files."""


@data_group.command("download")
@data_dir_option
@mirror_option
@click.option("--force", is_flag=True, help="Fetch again even if the cached files verify.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def data_download(data_dir: str | None, mirrors: tuple[str, ...], force: bool,
                  quiet: bool) -> None:
    """Fetch the four MNIST files, verify their SHA-256 and cache them."""
    from cnncli.data.mnist import ensure_files, resolve_data_dir

    paths = ensure_files(data_dir, mirrors=mirrors, force=force,
                         progress=make_byte_progress(quiet), report=make_reporter(quiet))
    if not quiet:
        click.echo(f"MNIST verified in {resolve_data_dir(data_dir)} ({len(paths)} files)")


@data_group.command("info")
@data_dir_option
def data_info(data_dir: str | None) -> None:
    """Show where the files are, whether each is present and verified, and the split sizes."""
    from cnncli.data.mnist import data_info as info

    folder, rows = info(data_dir)
    click.echo(f"data folder: {folder}")
    for r in rows:
        shape = "x".join(map(str, r["shape"])) if r["shape"] else "-"
        size = f"{r['bytes']:,} bytes" if r["bytes"] is not None else ""
        click.echo(f"  {r['name']:<25} {r['status']:<9} {shape:<12} {size}")
    if all(r["status"] in ("verified", "ok") for r in rows):
        click.echo(f"train: {rows[0]['shape'][0]} images, test: {rows[2]['shape'][0]} images")
    elif any(r["status"] == "corrupt" for r in rows):
        click.echo(f"run `cnncli data download --force --data-dir {folder}` to replace the "
                   "corrupt files")
    else:
        click.echo(f"run `cnncli data download --data-dir {folder}` to fetch what is missing")


# -- training: train, eval ---------------------------------------------------------------------

def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One summary line per epoch."""
    val = ""
    if row["val_acc"] is not None:
        val = f"  val loss {row['val_loss']:.4f} acc {_percent(row['val_acc'])}"
    return (f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  train loss "
            f"{row['train_loss']:.4f} acc {_percent(row['train_acc'])}{val}  lr {row['lr']:.2e}"
            f"  {row['seconds']:.1f}s  {row['images_per_s']:,.0f} img/s")


def _progress_callbacks(quiet: bool) -> Any:
    """Callbacks drawing a tqdm bar per epoch (on a terminal) and echoing one line per epoch."""
    import sys

    from tqdm import tqdm

    from cnncli.train import Callbacks

    class Progress(Callbacks):
        def __init__(self) -> None:
            self.bar: Any = None
            self.epochs = 0

        def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
            self.epochs = epochs
            if not quiet and sys.stderr.isatty():
                self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}/{epochs}",
                                unit="batch", leave=False, dynamic_ncols=True, file=sys.stderr)

        def on_step(self, epoch: int, batch: int, loss: float, accuracy: float,
                    images_per_s: float) -> None:
            if self.bar is not None:
                self.bar.set_postfix_str(f"loss {loss:.4f} acc {_percent(accuracy)} "
                                         f"{images_per_s:,.0f} img/s", refresh=False)
                self.bar.update(1)

        def on_epoch_end(self, row: dict[str, Any]) -> None:
            self.close()
            if not quiet:
                click.echo(_epoch_line(row, self.epochs))

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


#: options that would change a resumed run's saved config
_RESUME_FIXED = (("config_spec", "--config"), ("overrides", "--set"),
                 ("batch_size", "--batch-size"), ("lr", "--lr"), ("seed", "--seed"),
                 ("limit", "--limit"))


@cli.command()
@click.option("--config", "config_spec", metavar="FILE|PRESET",
              help="A YAML config file, or the name of a bundled preset such as 'lenet'.")
@click.option("--resume", type=click.Path(), metavar="CHECKPOINT",
              help="Continue the run saved in this checkpoint (e.g. runs/x/last.safetensors); "
                   "its config travels inside it.")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Run folder (default runs/<config>-<YYYYmmdd-HHMMSS>); must be new or empty.")
@click.option("--epochs", type=int,
              help="Override train.epochs. With --resume: the new total (the schedule is "
                   "recomputed for it, so a cosine decay is stretched).")
@click.option("--batch-size", type=int, help="Override train.batch_size.")
@click.option("--lr", type=float, help="Override optimizer.lr.")
@click.option("--seed", type=int, help="Override train.seed.")
@click.option("--limit", type=int, metavar="N",
              help="Train on the first N training images only (quick runs).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override any config value (YAML-parsed), e.g. --set optimizer.momentum=0.8; "
                   "repeatable.")
@data_dir_option
@mirror_option
@click.option("--quiet", "-q", is_flag=True,
              help="No model table, progress bars or epoch lines; only the final result line.")
@click.pass_context
def train(ctx: click.Context, config_spec: str | None, resume: str | None, out: str | None,
          epochs: int | None, batch_size: int | None, lr: float | None, seed: int | None,
          limit: int | None, overrides: tuple[str, ...], data_dir: str | None,
          mirrors: tuple[str, ...], quiet: bool) -> None:
    """Train a network on MNIST and write a run folder (config, metrics, checkpoints, summary).

    Ctrl-C stops after the current step, writes a resumable checkpoint and exits with 130.
    """
    from pathlib import Path

    from cnncli.config import Override, load_config
    from cnncli.errors import ConfigError
    from cnncli.train import plan_resume, remove_if_empty, reserve_run_dir

    given = dict(config_spec=config_spec, overrides=overrides, batch_size=batch_size, lr=lr,
                 seed=seed, limit=limit)
    if resume is not None:
        for key, option in _RESUME_FIXED:
            if given[key] is not None and given[key] != ():  # 0 is a value given too
                raise ConfigError(f"{option} cannot be combined with --resume: a resumed run "
                                  "keeps its saved config (only --epochs, --data-dir and "
                                  "--mirror may change)")
        plan = plan_resume(resume, epochs=epochs, out=Path(out) if out else None)
        cfg, ckpt = plan.config, plan.checkpoint
        run_dir, created = (reserve_run_dir(plan.run_dir, cfg.name) if out
                            else (plan.run_dir, False))
    else:
        if config_spec is None:
            raise ConfigError("train needs --config FILE|PRESET (or --resume CHECKPOINT)")
        options = [Override.of(opt, key, val) for opt, key, val in (
            ("--epochs", "train.epochs", epochs), ("--batch-size", "train.batch_size", batch_size),
            ("--lr", "optimizer.lr", lr), ("--seed", "train.seed", seed),
            ("--limit", "train.limit", limit)) if val is not None]
        cfg = load_config(config_spec, [*overrides, *options])
        ckpt = None
        run_dir, created = reserve_run_dir(Path(out) if out else None, cfg.name)
    try:
        _train_in(ctx, cfg, ckpt, run_dir, data_dir, mirrors, quiet)
    finally:
        if created:  # a run that failed before writing anything leaves no empty folder
            remove_if_empty(run_dir)


def _train_in(ctx: click.Context, cfg: Any, ckpt: Any, run_dir: Any, data_dir: str | None,
              mirrors: tuple[str, ...], quiet: bool) -> None:
    """Load the data and train in the reserved run folder, reporting as `train` promises."""
    from cnncli.network import format_summary
    from cnncli.train import Trainer, TrainingInterrupted, deferred_interrupt, load_dataset

    try:
        data = load_dataset(cfg.run, data_dir=data_dir, mirrors=mirrors,
                            progress=make_byte_progress(quiet), report=make_reporter(quiet))
    except KeyboardInterrupt:
        click.echo("Interrupted while loading the data; nothing was written.", err=True)
        ctx.exit(130)
    trainer = Trainer(cfg, data, run_dir, resume=ckpt)
    if not quiet:
        click.echo(format_summary(trainer.net))
        val = len(data.val) if data.val is not None else 0
        action = (f"resuming {ckpt.source} at epoch {ckpt.epoch + 1}" if ckpt else "training")
        click.echo(f"{action}: {len(data.train):,} training images, {val:,} validation; "
                   f"run folder {run_dir}")
    progress = _progress_callbacks(quiet)

    def on_ctrl_c() -> None:
        progress.close()
        click.echo("Ctrl-C: finishing this step, then saving a resumable checkpoint "
                   "(Ctrl-C again to stop at once)", err=True)

    last = run_dir / "last.safetensors"
    try:
        with deferred_interrupt(on_ctrl_c) as stop:
            summary = trainer.fit(progress, stop)
    except TrainingInterrupted as exc:
        progress.close()
        click.echo(f"Interrupted in epoch {exc.epoch} after batch {exc.batch} of "
                   f"{trainer.steps_per_epoch} (step {exc.step}); saved {exc.checkpoint}",
                   err=True)
        click.echo(f"Resume with: cnncli train --resume {exc.checkpoint}", err=True)
        ctx.exit(130)
    except KeyboardInterrupt:  # the second Ctrl-C: checkpoints on disk are whole (atomic)
        progress.close()
        saved = (f"the last checkpoint is {last}; resume with: cnncli train --resume {last}"
                 if last.exists() else "no checkpoint had been written yet")
        click.echo(f"Stopped at once; {saved}", err=True)
        ctx.exit(130)
    finally:
        progress.close()
    test = summary["test"]
    result = (f"test accuracy {_percent(test['accuracy'])} (loss {test['loss']:.4f}, "
              f"{test['images']:,} images)" if test else "no test set")
    click.echo(f"best epoch {summary['best_epoch']} (val acc "
               f"{_percent(summary['best_val_acc'])}): {result}; {summary['epochs']} "
               f"epoch{'s' if summary['epochs'] != 1 else ''} in {summary['train_seconds']:.0f}s;"
               f" run folder {run_dir}")


@cli.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test",
              show_default=True,
              help="test: the 10,000 test images; val: the run's validation images; train: the "
                   "whole 60,000-image training file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per forward pass (default: the run's train.eval_batch_size).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: accuracy, loss, per_class, confusion_matrix.")
@data_dir_option
@mirror_option
def eval_(checkpoint: str, split: str, batch_size: int | None, as_json: bool,
          data_dir: str | None, mirrors: tuple[str, ...]) -> None:
    """Evaluate a checkpoint: accuracy, mean loss, per-class precision/recall/F1, confusion matrix.

    Needs nothing but the checkpoint: the model's config travels inside it.
    """
    import json

    from cnncli.checkpoint import load_checkpoint
    from cnncli.config import NUM_CLASSES
    from cnncli.layers.losses import build_loss
    from cnncli.metrics import confusion_matrix, per_class
    from cnncli.network import build_network
    from cnncli.train import evaluate, load_dataset

    ckpt, cfg = load_checkpoint(checkpoint)
    run = cfg.run.model_copy(deep=True)
    run.train.limit = None
    if split == "train":
        run.train.val_split = 0.0
    data = load_dataset(run, data_dir=data_dir, mirrors=mirrors,
                        progress=make_byte_progress(as_json), report=make_reporter(as_json))
    part = {"test": data.test, "val": data.val, "train": data.train}[split]
    if part is None:
        from cnncli.errors import ConfigError

        raise ConfigError(f"--split {split}: this run has no {split} images "
                          f"(train.val_split is {cfg.run.train.val_split})")
    net = build_network(run.model.input_shape, run.model.layers)
    params = net.named_parameters()
    for name, arr in ckpt.weights.items():
        params[name][...] = arr
    ev = evaluate(net, build_loss(run.loss), part, batch_size or run.train.eval_batch_size)
    cm = confusion_matrix(ev.labels, ev.predictions, NUM_CLASSES)
    classes = per_class(cm)
    if as_json:
        click.echo(json.dumps({
            "checkpoint": str(checkpoint), "epoch": ckpt.epoch, "split": split,
            "images": len(part), "accuracy": ev.accuracy, "loss": ev.loss,
            "per_class": classes, "confusion_matrix": cm.tolist()}))
        return
    click.echo(f"{checkpoint} (epoch {ckpt.epoch}) on the {split} split, {len(part):,} images")
    click.echo(f"accuracy {_percent(ev.accuracy)}   mean loss {ev.loss:.4f}")
    click.echo("")
    click.echo(f"{'class':>5}  {'precision':>9}  {'recall':>7}  {'f1':>7}  {'support':>7}")
    for c in classes:
        click.echo(f"{c['class']:>5}  {_percent(c['precision']):>9}  {_percent(c['recall']):>7}"
                   f"  {_percent(c['f1']):>7}  {c['support']:>7,}")
    click.echo("")
    click.echo("confusion matrix (rows: true class, columns: predicted class)")
    width = max(5, len(f"{int(cm.max()):,}") + 1)
    click.echo("true\\pred" + "".join(f"{k:>{width}}" for k in range(NUM_CLASSES)))
    for k in range(NUM_CLASSES):
        click.echo(f"{k:>9}" + "".join(f"{int(v):>{width},}" for v in cm[k]))
