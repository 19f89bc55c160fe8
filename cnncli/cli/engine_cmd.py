"""`cnncli summary`, `cnncli gradcheck` and `cnncli bench`: the engine, inspected."""

from __future__ import annotations

import json

import click

from cnncli.cli import cli
from cnncli.cli.options import (
    batch_size_option,
    config_option,
    finite,
    json_option,
    seed_option,
    set_option,
)


@cli.command()
@config_option()
@set_option()
@json_option("Print the layers as JSON: index, layer, output_shape, params, and the total.")
def summary(config_spec: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Print the network's layers, output shapes and parameter counts."""
    from cnncli.config import load_config
    from cnncli.network import format_summary, summary_rows

    model = load_config(config_spec, overrides).run.model
    if as_json:
        rows = summary_rows(model.input_shape, model.layers)
        layers = [{"index": int(i), "layer": d, "output_shape": list(s), "params": p}
                  for i, d, s, p in rows[1:]]
        click.echo(json.dumps({"input_shape": list(model.input_shape), "layers": layers,
                               "total_params": sum(r["params"] for r in layers)}, indent=2))
        return
    click.echo(format_summary(model.input_shape, model.layers))


@cli.command()
@config_option(required=False, help="Check this network (at its input shape, small random "
                                    "batch) instead of the built-in suite.")
@set_option()
@click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(min=0, min_open=True),
              callback=finite, help="Largest relative error that passes.")
@seed_option("Seed for the random data.")
@batch_size_option("Batch size of the random input (with --config).", default=2,
                   show_default=True)
@click.option("--samples", default=64, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Entries checked per tensor, chosen at random (with --config).")
@json_option("Print one JSON object: every check's name, max_rel_error, passed, worst.")
def gradcheck(config_spec: str | None, overrides: tuple[str, ...], tol: float, seed: int,
              batch_size: int, samples: int, as_json: bool) -> None:
    """Compare every analytic gradient with finite differences in float64.

    With no --config, checks every registered layer type in several configurations, every loss
    and two small whole networks. Exits 0 only if every row passes.
    """
    from cnncli import gradcheck as gc
    from cnncli.config import load_config

    if config_spec is None:
        if overrides:
            raise click.UsageError("--set needs --config")
        results = gc.run_default_checks(seed=seed, tol=tol)
    else:
        run = load_config(config_spec, overrides).run
        results = gc.check_model(run.model.input_shape, run.model.layers, run.loss, seed=seed,
                                 tol=tol, batch=batch_size, limit=samples, name=config_spec)
    failed = sum(not r.passed for r in results)
    if as_json:
        rows = [{"name": r.name, "max_rel_error": r.max_rel_error, "passed": r.passed,
                 "worst": r.worst, "skipped": r.skipped} for r in results]
        click.echo(json.dumps({"tolerance": tol, "passed": len(results) - failed,
                               "failed": failed, "checks": rows}, indent=2))
        if failed:
            raise SystemExit(1)
        return
    width = max(len(r.name) for r in results)
    click.echo(f"{'check':<{width}}  {'max rel error':>13}  result  worst")
    for r in results:
        verdict = "pass" if r.passed else "FAIL"
        click.echo(f"{r.name:<{width}}  {r.max_rel_error:>13.2e}  {verdict:<6}  {r.worst}")
    click.echo(f"{len(results) - failed} passed, {failed} failed (tolerance {tol:g})")
    if failed:
        raise SystemExit(1)


@cli.command()
@config_option()
@set_option()
@batch_size_option("Training batch size to time.  [default: the config's train.batch_size]")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Timed training steps (after 5 warm-up steps); figures are medians.")
@click.option("--eval-batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Batch size of the timed inference passes.")
@seed_option("Seed for the weights and the synthetic data.")
@click.option("--threads", default=None, type=click.IntRange(min=1, max=64), metavar="N",
              help="Workers for the training step and inference (1 and 2 are the interesting "
                   "values).  [default: one per shard, at most one per CPU]")
@click.option("--shards", default=None, type=click.IntRange(min=1, max=64), metavar="N",
              help="Shards each training batch is cut into.  [default: the config's "
                   "train.shards]")
@json_option("Print the figures as one JSON object instead of a table.")
def bench(config_spec: str, overrides: tuple[str, ...], batch_size: int | None, steps: int,
          eval_batch_size: int, seed: int, threads: int | None, shards: int | None,
          as_json: bool) -> None:
    """Time every layer's forward and backward pass, a training step and inference.

    Runs on random data shaped like the config's input (no download needed), with the
    config's loss and optimizer. Like `caffe time`: milliseconds per batch for each layer,
    then training and inference images per second.
    """
    from cnncli.bench import format_result, run_benchmark
    from cnncli.config import load_config
    from cnncli.training.run import default_threads

    run = load_config(config_spec, overrides).run
    shards = shards or run.train.shards
    result = run_benchmark(
        run.model.input_shape, run.model.layers, run.loss, run.optimizer,
        batch_size=batch_size or run.train.batch_size, steps=steps,
        eval_batch_size=eval_batch_size, seed=seed, shards=shards,
        threads=threads or min(shards, default_threads()))
    if as_json:
        click.echo(json.dumps({"config": config_spec, **result.to_dict()}, indent=2))
    else:
        click.echo(format_result(result, config_spec))
