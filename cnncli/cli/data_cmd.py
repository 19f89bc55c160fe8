"""`cnncli data download|info`: fetch, verify and inspect a dataset's files."""

from __future__ import annotations

import json
import sys

import click

from cnncli.cli import cli
from cnncli.cli.options import data_dir_option_for, json_option, mirror_option, quiet_option
from cnncli.cli.output import byte_progress, plural, reporter

dataset_option = click.option(
    "--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default="mnist",
    show_default=True, help="Which registered dataset.")


@cli.group("data")
def data_group() -> None:
    """Download, verify and inspect a dataset's files (MNIST, Fashion-MNIST, your own IDX)."""


@data_group.command("download")
@dataset_option
@data_dir_option_for(config=False)
@mirror_option
@click.option("--force", is_flag=True,
              help="Fetch again even if the cached files verify (only files cnncli wrote are "
                   "ever replaced).")
@quiet_option("No progress bars and no report lines; only errors.")
def data_download(dataset: str, data_dir: str | None, mirrors: tuple[str, ...], force: bool,
                  quiet: bool) -> None:
    """Fetch the dataset's four files, verify their SHA-256 and cache them."""
    from cnncli.data import ensure_files, get_dataset, resolve_data_dir

    definition = get_dataset(dataset)
    paths = ensure_files(data_dir, mirrors=mirrors, force=force, dataset=definition,
                         progress=byte_progress(quiet), report=reporter(quiet))
    if not quiet:
        click.echo(f"{definition.title} verified in {resolve_data_dir(data_dir, definition)} "
                   f"({plural(len(paths), 'file')})")


@data_group.command("info")
@click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist", "idx"]),
              default="mnist", show_default=True,
              help="Which dataset; idx: your own folder of IDX files (give --data-dir).")
@data_dir_option_for(config=False)
@json_option("Print one JSON object: folder, dataset, ok, advice and every file's row.")
def data_info(dataset: str, data_dir: str | None, as_json: bool) -> None:
    """Show where the files are, whether each is present and verified, and the split sizes.

    Reads only headers (and hashes what the cache's marker does not vouch for); nothing is
    fetched or written. Exits 1 when a file is missing or unusable.
    """
    from cnncli.data import dataset_info, get_dataset, idx_folder_info

    if dataset == "idx":
        if data_dir is None:
            raise click.UsageError("--dataset idx needs --data-dir: the folder to inspect")
        info = idx_folder_info(data_dir)
    else:
        info = dataset_info(data_dir, get_dataset(dataset))
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        click.echo(f"data folder: {info.folder}")
        for r in info.files:
            shape = "x".join(map(str, r.shape)) if r.shape else "-"
            size = f"{r.bytes:,} bytes" if r.bytes is not None else ""
            click.echo(f"  {r.name:<27} {r.status:<13} {shape:<12} {size}".rstrip())
        if info.ok and info.train_count is not None and info.test_count is not None:
            click.echo(f"train: {plural(info.train_count, 'image')}, test: "
                       f"{plural(info.test_count, 'image')}")
        if info.advice:
            click.echo(info.advice, err=not info.ok)
    if not info.ok:
        sys.exit(1)
