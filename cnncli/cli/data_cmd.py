"""`cnncli data download|info`: fetch, verify and inspect the dataset files."""

from __future__ import annotations

import click

from cnncli.cli import cli
from cnncli.cli.options import data_dir_option, mirror_option, quiet_option
from cnncli.cli.output import byte_progress, reporter


@cli.group("data")
def data_group() -> None:
    """Download, verify and inspect the MNIST files."""


@data_group.command("download")
@data_dir_option
@mirror_option
@click.option("--force", is_flag=True, help="Fetch again even if the cached files verify.")
@quiet_option("No progress bars.")
def data_download(data_dir: str | None, mirrors: tuple[str, ...], force: bool,
                  quiet: bool) -> None:
    """Fetch the four MNIST files, verify their SHA-256 and cache them."""
    from cnncli.data.mnist import ensure_files, resolve_data_dir

    paths = ensure_files(data_dir, mirrors=mirrors, force=force, progress=byte_progress(quiet),
                         report=reporter(quiet))
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
