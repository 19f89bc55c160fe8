"""`cnncli predict`, `cnncli plot ...`, `cnncli report`, `cnncli runs`: using and looking at
what was trained. Pillow and matplotlib are imported only inside these commands."""

from __future__ import annotations

import json

import click

from cnncli.cli import cli
from cnncli.cli.options import data_dir_option_for, json_option, mirror_option, quiet_option
from cnncli.cli.output import fetching_source, percent

RUN = click.argument("run", type=click.Path(), metavar="RUN|CHECKPOINT")
OUT = click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
                   help="Folder for the PNG (default: the run folder).")
data_dir_option = data_dir_option_for(config=False, checkpoint=True)


def echo_notes(notes: list[str]) -> None:
    """What the data source says the user should hear (other data than the run's own)."""
    for note in notes:
        click.echo(note, err=True)


@cli.command()
@click.argument("checkpoint", type=click.Path(), metavar="RUN|CHECKPOINT")
@click.argument("images", nargs=-1, required=True, type=click.Path(), metavar="IMAGE...")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="K", help="Classes shown per image, most probable first.")
@click.option("--raw", is_flag=True,
              help="The images already are in the model's format (e.g. 28x28, white digit on "
                   "black): skip the MNIST-style preparation.")
@click.option("--show", is_flag=True, help="Draw, in the terminal, the image the network saw.")
@json_option("Print one JSON object per image: input, error, top (class, name, probability).")
@click.pass_context
def predict(ctx: click.Context, checkpoint: str, images: tuple[str, ...], top_k: int,
            raw: bool, show: bool, as_json: bool) -> None:
    """Predict the class of your own images: PNG, JPEG, BMP, GIF, PGM, .npy, IDX, or folders.

    A photo or scan of a digit on paper is made into what the network expects the way MNIST
    was made: greyscale, inverted when the background is light, cropped to the ink, scaled to
    20 pixels on its longer side and centred by its centre of mass in a 28x28 frame. A bad
    image gets one line and the others are still predicted; the exit code is 1 then.

    \\b
    Example:
      cnncli predict runs/lenet-20261128-101500 my-seven.png --show
    """
    from cnncli.images import terminal_preview
    from cnncli.predict import predict_images

    results = predict_images(checkpoint, images, raw=raw, top_k=top_k)
    for r in results:
        if as_json:
            click.echo(json.dumps(r.to_dict()))
        elif r.error is not None:
            click.echo(f"Error: {r.error}", err=True)
        else:
            ranked = "  ".join(f"{name} {percent(p)}" for _, name, p in r.top)
            click.echo(f"{r.label}: {ranked}")
            if show and r.image is not None:
                click.echo(terminal_preview(r.image))
    if any(r.error is not None for r in results):
        ctx.exit(1)


@cli.group("plot")
def plot_group() -> None:
    """Draw a run's pictures as PNG files (the report embeds the same pictures)."""


@plot_group.command("curves")
@RUN
@OUT
def plot_curves(run: str, out: str | None) -> None:
    """Learning curves: train/val loss and accuracy per epoch, and the learning rate."""
    from cnncli.visualize import draw_curves, open_run

    click.echo(draw_curves(open_run(run), out).path)


@plot_group.command("confusion")
@RUN
@OUT
@data_dir_option
@mirror_option
def plot_confusion(run: str, out: str | None, data_dir: str | None,
                   mirrors: tuple[str, ...]) -> None:
    """The test set's confusion matrix as a heat map."""
    from cnncli.visualize import draw_confusion, open_run, test_results

    view = open_run(run)
    source = fetching_source(data_dir, mirrors, False)
    test = test_results(view, source)
    echo_notes(source.notes)
    click.echo(draw_confusion(view, test, out).path)


@plot_group.command("mistakes")
@RUN
@OUT
@click.option("--count", type=click.IntRange(min=1, max=400), default=25, show_default=True,
              metavar="N", help="How many mistakes to show.")
@data_dir_option
@mirror_option
def plot_mistakes(run: str, out: str | None, count: int, data_dir: str | None,
                  mirrors: tuple[str, ...]) -> None:
    """The test images the model got most confidently wrong, with true and predicted class."""
    from cnncli.visualize import draw_mistakes, open_run, test_results

    view = open_run(run)
    source = fetching_source(data_dir, mirrors, False)
    test = test_results(view, source)
    echo_notes(source.notes)
    click.echo(draw_mistakes(view, test, out, n=count).path)


@plot_group.command("filters")
@RUN
@OUT
def plot_filters(run: str, out: str | None) -> None:
    """The learned kernels of every conv layer (one shared colour scale per layer)."""
    from cnncli.visualize import draw_filters, open_run

    click.echo(draw_filters(open_run(run), out).path)


@plot_group.command("activations")
@RUN
@OUT
@click.option("--image", "image_path", type=click.Path(), metavar="FILE",
              help="Your own image (prepared as `predict` prepares it).")
@click.option("--index", type=click.IntRange(min=0), default=None, metavar="N",
              help="A test-set image by its index (default: 0, when no --image).")
@click.option("--raw", is_flag=True, help="--image already is in the model's format.")
@data_dir_option
@mirror_option
def plot_activations(run: str, out: str | None, image_path: str | None, index: int | None,
                     raw: bool, data_dir: str | None, mirrors: tuple[str, ...]) -> None:
    """Feature maps: one image carried through every layer, each channel's activation shown."""
    from cnncli.errors import DataError
    from cnncli.images import prepare_digit, read_image_inputs
    from cnncli.visualize import draw_activations, open_run, test_images

    if image_path is not None and index is not None:
        raise click.UsageError("give --image or --index, not both")
    view = open_run(run)
    if image_path is not None:
        items = read_image_inputs([image_path])
        if len(items) != 1:
            raise click.UsageError(f"--image {image_path}: holds {len(items)} images; give one")
        if items[0].error or items[0].image is None:
            raise DataError(items[0].error or f"{image_path}: no image")
        image = prepare_digit(items[0].image, tuple(view.cfg.run.model.input_shape[1:]), raw=raw)
    else:
        source = fetching_source(data_dir, mirrors, False)
        images = test_images(view, source)
        echo_notes(source.notes)
        i = 0 if index is None else index
        if i >= len(images):
            raise click.UsageError(f"--index {i}: the test set has {len(images):,} images")
        image = images[i]  # only this image goes through the network, not the test set
    click.echo(draw_activations(view, image, out).path)


@cli.command()
@RUN
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="The test image whose feature maps the report shows.")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for report.html and its pictures (default: the run folder).")
@data_dir_option
@mirror_option
@quiet_option("Print nothing but errors.")
def report(run: str, sample: int, out: str | None, data_dir: str | None,
           mirrors: tuple[str, ...], quiet: bool) -> None:
    """Write report.html: one self-contained page with the run's config, model, curves, test
    metrics, confusion matrix, mistakes, filters, feature maps, timings and environment."""
    from cnncli.visualize import open_run, write_report

    source = fetching_source(data_dir, mirrors, quiet)
    path = write_report(open_run(run), source, sample=sample, out=out)
    if not quiet:
        echo_notes(source.notes)
        click.echo(path)


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False), default="runs", metavar="[FOLDER]")
@click.option("--sort", "sort_key", default="date", show_default=True, metavar="COLUMN",
              help="Sort by a column: name, config, status, epochs, best_val_acc, test_acc, "
                   "seconds, date.")
@click.option("--reverse", is_flag=True, help="Sort in descending order.")
@json_option("Print the rows as a JSON list.")
def runs(folder: str, sort_key: str, reverse: bool, as_json: bool) -> None:
    """A table of the runs in FOLDER (default runs/): name, config, epochs, best validation
    and test accuracy, time, date; unfinished and interrupted runs are marked."""
    from cnncli.runs_table import COLUMNS, format_runs, list_runs, sort_runs

    if sort_key not in COLUMNS:
        raise click.BadParameter(f"{sort_key!r} is not a column ({', '.join(COLUMNS)})",
                                 param_hint="--sort")
    rows = sort_runs(list_runs(folder), sort_key, descending=reverse)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(format_runs(rows))
