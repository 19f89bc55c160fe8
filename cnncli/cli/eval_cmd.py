"""`cnncli eval`: a thin shell over cnncli.training.evaluate_checkpoint."""

from __future__ import annotations

import json

import click

from cnncli.cli import cli
from cnncli.cli.options import batch_size_option, data_dir_option_for, json_option, mirror_option
from cnncli.cli.output import fetching_source, percent


@cli.command("eval")
@click.argument("checkpoint", type=click.Path(), metavar="CHECKPOINT|RUN_DIR")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test",
              show_default=True,
              help="test: the test images; val: the run's validation images; train: the whole "
                   "training file.")
@batch_size_option("Images per forward pass (default: the run's train.eval_batch_size).")
@json_option("Print one JSON object: accuracy, loss, per_class, confusion_matrix.")
@data_dir_option_for(config=False, checkpoint=True)
@mirror_option
def eval_(checkpoint: str, split: str, batch_size: int | None, as_json: bool,
          data_dir: str | None, mirrors: tuple[str, ...]) -> None:
    """Evaluate a checkpoint: accuracy, mean loss, per-class precision/recall/F1, confusion matrix.

    Needs nothing but the checkpoint: the model's config travels inside it. Given a run folder,
    evaluates its best.safetensors.
    """
    from pathlib import Path

    from cnncli.training import evaluate_checkpoint
    from cnncli.training.evaluate import find_checkpoint

    path = find_checkpoint(checkpoint) if checkpoint else Path(checkpoint)
    if str(path) != checkpoint and not as_json:
        click.echo(f"evaluating {path}", err=True)
    source = fetching_source(data_dir, mirrors, as_json)
    r = evaluate_checkpoint(path, split, source, batch_size)
    for note in source.notes:
        click.echo(note, err=True)
    if as_json:
        click.echo(json.dumps(r.to_dict()))
        return
    click.echo(f"{path} (epoch {r.epoch}) on the {split} split, {r.images:,} images")
    click.echo(f"accuracy {percent(r.accuracy)}   mean loss {r.loss:.4f}")
    click.echo("")
    named = any(name != str(k) for k, name in enumerate(r.classes))
    width = max(len(n) for n in r.classes) if named else 0
    label = f"  {'name':<{width}}" if named else ""
    click.echo(f"{'class':>5}{label}  {'precision':>9}  {'recall':>7}  {'f1':>7}  {'support':>7}")
    for c, name in zip(r.per_class, r.classes, strict=True):
        label = f"  {name:<{width}}" if named else ""
        click.echo(f"{c['class']:>5}{label}  {percent(c['precision']):>9}  "
                   f"{percent(c['recall']):>7}  {percent(c['f1']):>7}  {c['support']:>7,}")
    click.echo("")
    click.echo("confusion matrix (rows: true class, columns: predicted class)")
    k = len(r.confusion)
    width = max(5, len(f"{int(r.confusion.max()):,}") + 1)
    click.echo("true\\pred" + "".join(f"{j:>{width}}" for j in range(k)))
    for i in range(k):
        click.echo(f"{i:>9}" + "".join(f"{int(v):>{width},}" for v in r.confusion[i]))
