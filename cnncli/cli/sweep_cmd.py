"""`cnncli sweep`: a thin shell over cnncli.sweep (plan_sweep, run_sweep); Ray is imported
only inside the command, and only by the library."""

from __future__ import annotations

import json
from typing import Any

import click

from cnncli.cli import cli
from cnncli.cli.options import (
    data_dir_option,
    json_option,
    mirror_option,
    quiet_option,
    set_option,
)
from cnncli.cli.output import byte_progress, percent, reporter

#: options that say which trials run: a sweep file or --resume brings its own
TRIAL_OPTIONS = (("config_spec", "--config"), ("overrides", "--set"), ("grid", "--grid"),
                 ("seeds", "--seeds"))


def _given(values: dict[str, Any], names: tuple[tuple[str, str], ...]) -> list[str]:
    return [option for name, option in names if values.get(name) not in (None, ())]


def _check_form(sweep_file: str | None, resume: str | None, values: dict[str, Any]) -> None:
    """Exactly one of SWEEP_FILE, --config and --resume; nothing that contradicts it."""
    forms = [f for f, v in (("SWEEP_FILE", sweep_file), ("--config", values["config_spec"]),
                            ("--resume", resume)) if v is not None]
    if not forms:
        raise click.UsageError("say what to sweep: a sweep file (cnncli sweep sweep.yaml), "
                               "--config with --grid/--seeds, or --resume SWEEP_DIR")
    if len(forms) > 1:
        raise click.UsageError(f"{forms[0]} and {forms[1]} cannot be combined; give one")
    if resume is not None:
        clash = _given(values, (*TRIAL_OPTIONS, ("out", "--out"),
                                ("max_concurrent", "--max-concurrent"),
                                ("cpus_per_trial", "--cpus-per-trial")))
        if clash:
            raise click.UsageError(f"{clash[0]} cannot be combined with --resume: a resumed "
                                   "sweep runs as it was saved (only --address, --storage, "
                                   "--data-dir and --mirror may change)")
    elif sweep_file is not None:
        clash = _given(values, TRIAL_OPTIONS[1:])
        if clash:
            raise click.UsageError(f"{clash[0]} cannot be combined with a sweep file: put it "
                                   "in the file (set:, grid:, seeds:)")


class Progress:
    """Prints one line per trial start and end and per epoch, for the sweep's events."""

    def __init__(self, quiet: bool, address: str | None) -> None:
        self.quiet, self.address = quiet, address

    def __call__(self, event: Any) -> None:
        d, tid = event.data, event.trial_id
        if event.kind == "sweep_start":
            kept = f", {d['kept']} kept from before" if d["kept"] else ""
            click.echo(f"{d['to_run']} of {d['trials']} trials to run{kept}; sweep folder "
                       f"{d['sweep_dir']}", err=True)
            if d["to_run"]:
                where = (f"connecting to the Ray cluster at {self.address}" if self.address
                         else "starting Ray on this machine")
                click.echo(f"{where} ...", err=True)
        if self.quiet:
            return
        if event.kind == "trial_start":
            click.echo(f"start    {tid}  {d['trial']}")
        elif event.kind == "epoch":
            loss = "" if d.get("train_loss") is None else f"  train loss {d['train_loss']:.4f}"
            time = "" if d.get("seconds") is None else f"  {d['seconds']:.0f}s"
            of = f"{d['epoch']}/{d['epochs']}" if d.get("epochs") else str(d["epoch"])
            click.echo(f"epoch    {tid}  {of}  val {percent(d.get('val_acc'))}{loss}{time}")
        elif event.kind == "trial_end":
            if d["status"] == "failed":
                click.echo(f"failed   {tid}  {d['error']}")
            else:
                test = "" if d.get("test_acc") is None else f"  test {percent(d['test_acc'])}"
                cut = "  (cut early by ASHA)" if d["status"] == "stopped" else ""
                click.echo(f"{d['status']:<8} {tid}  best val {percent(d.get('best_val_acc'))}"
                           f"{test}{cut}")


@cli.command()
@click.argument("sweep_file", required=False, type=click.Path(dir_okay=False),
                metavar="[SWEEP_FILE]")
@click.option("--config", "config_spec", metavar="FILE|PRESET",
              help="Sweep this config (a YAML file or a preset such as 'lenet') with --grid "
                   "and --seeds, instead of a sweep file.")
@set_option(help="Fix one config value in every trial (YAML-parsed), e.g. --set "
                 "train.epochs=3; repeatable.")
@click.option("--grid", multiple=True, metavar="KEY.PATH=V1,V2,...",
              help="Values to sweep (YAML-parsed, comma-separated), e.g. --grid "
                   "optimizer.lr=3e-4,1e-3; repeatable: every combination runs.")
@click.option("--seeds", metavar="S1,S2,...",
              help="Train every config once per seed (train.seed), e.g. --seeds 0,1,2.")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Sweep folder (default sweeps/<name>-<YYYYmmdd-HHMMSS>); must be new or "
                   "empty.")
@click.option("--resume", type=click.Path(file_okay=False), metavar="SWEEP_DIR",
              help="Continue an interrupted sweep: finished trials are kept, the others run "
                   "again, from their last checkpoint where they have one.")
@click.option("--max-concurrent", type=click.IntRange(min=1), metavar="N",
              help="Trials at once  [default: as many as Ray has CPUs for].")
@click.option("--cpus-per-trial", type=click.IntRange(min=1), metavar="N",
              help="CPUs, and training workers, of each trial  [default: 1].")
@click.option("--address", metavar="ADDR", envvar="RAY_ADDRESS", show_envvar=True,
              help="Run on the Ray cluster at ADDR (host:port of `ray start --head`)  "
                   "[default: Ray starts on this machine for the sweep].")
@click.option("--storage", metavar="PATH",
              help="Where Ray keeps its own records: a folder every node sees, or a URI "
                   "such as s3://...  [default: SWEEP_DIR/ray].")
@data_dir_option
@mirror_option
@click.option("--dry-run", is_flag=True,
              help="Check the sweep and list its trials; start nothing, write nothing.")
@json_option("Print one JSON object at the end: the table, best.yaml and every trial.")
@quiet_option("No line per trial and epoch; only the result.")
@click.pass_context
def sweep(ctx: click.Context, sweep_file: str | None, config_spec: str | None,
          overrides: tuple[str, ...], grid: tuple[str, ...], seeds: str | None,
          out: str | None, resume: str | None, max_concurrent: int | None,
          cpus_per_trial: int | None, address: str | None, storage: str | None,
          data_dir: str | None, mirrors: tuple[str, ...], dry_run: bool, as_json: bool,
          quiet: bool) -> None:
    """Train many configs and seeds at once on Ray, and compare them.

    Each trial is an ordinary training (its own run folder, checkpoints, metrics and report)
    with one CPU; they run side by side, on this machine or on a Ray cluster (--address).
    The sweep folder holds trials/<id>/, sweep.csv and sweep.jsonl (one row per trial) and
    best.yaml; the table printed at the end has one row per config, mean and standard
    deviation over its seeds, best first. Needs Ray: pip install "cnncli[sweep]". A sweep
    file can also draw random values and stop poor trials early (see README.md, Sweeps). Ctrl-C
    stops the sweep; --resume continues it.

    \b
    Examples:
      cnncli sweep --config lenet --grid optimizer.lr=3e-4,1e-3,3e-3 --seeds 0,1
      cnncli sweep --config mlp --set train.epochs=3 --grid optimizer.lr=1e-3,3e-3
      cnncli sweep sweep.yaml --out sweeps/lr
      cnncli sweep sweep.yaml --address 10.0.0.1:6379 --out /shared/sweeps/lr
      cnncli sweep --resume sweeps/lr
    """
    values = {"config_spec": config_spec, "overrides": overrides, "grid": grid,
              "seeds": seeds, "out": out, "max_concurrent": max_concurrent,
              "cpus_per_trial": cpus_per_trial}
    _check_form(sweep_file, resume, values)
    from cnncli.sweep import (
        CnncliTrial,
        default_sweep_dir,
        format_table,
        load_spec,
        plan_sweep,
        run_sweep,
        spec_from_options,
    )

    spec = None
    if sweep_file is not None:
        spec = load_spec(sweep_file)
        run = {k: v for k, v in (("max_concurrent", max_concurrent),
                                 ("cpus_per_trial", cpus_per_trial)) if v is not None}
        spec = spec.model_copy(update=run) if run else spec
    elif config_spec is not None:
        spec = spec_from_options(config_spec, grid, seeds, overrides=overrides,
                                 max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial)
    folder = resume or out or str(default_sweep_dir(spec.name if spec else "sweep"))
    if dry_run:
        plan = plan_sweep(spec, folder, resume=resume is not None)
        _print_plan(plan, as_json)
        return
    quiet_data = quiet or as_json
    trial = CnncliTrial(data_dir=data_dir, mirrors=mirrors, progress=byte_progress(quiet_data),
                        notify=reporter(quiet_data))
    result = run_sweep(spec, folder, address=address, storage=storage,
                       resume=resume is not None, train_trial=trial,
                       on_event=None if as_json else Progress(quiet, address))
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo("")
        click.echo(format_table(result.table))
        if result.best_config is not None:
            click.echo(f"best config: {result.best_config} (train it again: cnncli train "
                       f"{result.best_config})")
        click.echo(f"sweep folder {result.sweep_dir}: sweep.csv, sweep.jsonl, trials/")
    if not result.complete:
        left = sum(r.status not in ("ok", "stopped", "failed") for r in result.trials)
        click.echo(f"Interrupted with {left} of {len(result.trials)} trials unfinished; "
                   f"resume with: cnncli sweep --resume {result.sweep_dir}", err=True)
        ctx.exit(130)
    if not any(r.status == "ok" for r in result.trials):
        raise click.ClickException("no trial finished: every one failed or was cut (see "
                                   f"{result.sweep_dir / 'sweep.csv'})")


def _print_plan(plan: Any, as_json: bool) -> None:
    """--dry-run: the trials the sweep would run, one line each (or one JSON object)."""
    todo = {t.trial_id for t in plan.todo}
    if as_json:
        click.echo(json.dumps({
            "sweep_dir": str(plan.sweep_dir), "name": plan.spec.name, "base": plan.spec.base,
            "set": plan.spec.set,
            "trials": [{"trial_id": t.trial_id, "config_id": t.config_id,
                        "overrides": dict(t.overrides), "seed": t.seed,
                        "to_run": t.trial_id in todo} for t in plan.trials]}, default=str))
        return
    kept = len(plan.trials) - len(todo)
    fixed = " ".join(f"{k}={json.dumps(v)}" for k, v in plan.spec.set.items())
    click.echo(f"sweep {plan.spec.name} (base {plan.spec.base}"
               f"{', set ' + fixed if fixed else ''}): {len(plan.trials)} trials"
               f"{f', {kept} already finished' if kept else ''}")
    for t in plan.trials:
        mark = "" if t.trial_id in todo else "  (finished)"
        click.echo(f"  {t.trial_id}  {t.describe()}{mark}")
    click.echo(f"sweep folder {plan.sweep_dir} (dry run: nothing started or written)")
