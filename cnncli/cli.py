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
        super().__init__(message)
        self.exit_code = exit_code


class CnnGroup(click.Group):
    """A group whose commands' CnnErrors become clean one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            raise CnnClickError(str(exc), exc.exit_code) from None


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


@cli.command()
@click.option("--config", "config_spec", default=None, metavar="FILE|PRESET",
              help="Check this network (at its input shape, small random batch) instead of "
                   "the built-in suite.")
@click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest relative error that passes.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the random data.")
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
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed for the weights and the synthetic data.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the figures as one JSON object instead of a table.")
def bench(config_spec: str, overrides: tuple[str, ...], batch_size: int | None, steps: int,
          eval_batch_size: int, seed: int, as_json: bool) -> None:
    """Time every layer's forward and backward pass, a training step and inference.

    Runs on random data shaped like the config's input (no download needed), with the
    config's loss and optimizer. Like `caffe time`: milliseconds per batch for each layer,
    then training and inference images per second.
    """
    import json

    from cnncli.bench import format_result, run_benchmark

    cfg = _load_config(config_spec, overrides)
    result = run_benchmark(
        cfg.model.input_shape, cfg.model.layers, cfg.loss, cfg.optimizer.model_dump(),
        batch_size=batch_size or cfg.train.batch_size, steps=steps,
        eval_batch_size=eval_batch_size, seed=seed,
    )
    if as_json:
        click.echo(json.dumps({"config": config_spec, **result.to_dict()}, indent=2))
    else:
        click.echo(format_result(result, config_spec))


# -- data: download, info ---------------------------------------------------------------------

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, envvar="CNNCLI_DATA_DIR",
    help="Where MNIST is cached. [default: $CNNCLI_DATA_DIR, else ~/.cache/cnncli/mnist]")
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
                         progress=make_byte_progress(quiet))
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
    else:
        click.echo("run `cnncli data download` to fetch what is missing")
