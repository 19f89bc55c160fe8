"""run_sweep: check every trial, run the unfinished ones on Ray Tune, write the sweep folder.

    result = run_sweep(spec, "sweeps/lr")                       # Ray embedded on this machine
    result = run_sweep(spec, "/shared/sweeps/lr", address="10.0.0.1:6379")   # on a cluster
    result = run_sweep(None, "sweeps/lr", resume=True)          # after Ctrl-C or a crash
    print(format_table(result.table))
    plan = plan_sweep(spec, "sweeps/lr")        # the checked trials, without Ray or any write

Every trial's overrides are checked against the config schema (through `resolve`) before
anything is created or started, so a typo fails in a second, not after an hour. A trial that
fails (NaN loss, a bad value only the trainer notices, any exception) is recorded as failed
with its one-line reason and the others go on. On a cluster of several machines, put the sweep
folder on a path every node sees (the trials write their run folders into it) and pass
`storage` for Ray's own records if that should live elsewhere (a shared folder, or a URI
Ray supports, such as s3://...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from cnncli.config import safe_load
from cnncli.errors import CnnError, ConfigError, quote
from cnncli.sweep.expand import Overrides, Trial, expand
from cnncli.sweep.results import (
    BEST,
    FINISHED,
    SPEC_FILE,
    TRIALS,
    ConfigResult,
    TrialRecord,
    best_yaml_text,
    group_by_config,
    read_records,
    write_records,
)
from cnncli.sweep.spec import SweepSpec, validate_spec
from cnncli.sweep.trial import CnncliTrial, distinct_data, resolve_config

#: the one line shown when Ray is missing
INSTALL_HINT = ('the sweep runs on Ray, which is not installed: pip install "cnncli[sweep]" '
                '(in a source checkout: pip install -e ".[sweep]")')


def require_ray() -> ModuleType:
    """Import Ray, or raise the one-line CnnError that says how to install it."""
    try:
        import ray
        import ray.tune  # noqa: F401  (ray[tune], not only ray's core)
    except ImportError:
        raise CnnError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class SweepEvent:
    """Progress for a front end: kind is sweep_start, trial_start, epoch, trial_end or
    sweep_end; trial_id names the trial (None for the sweep's own events). An epoch's data
    is its metrics row plus `epochs`, the trial's train.epochs."""

    kind: str
    trial_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepResult:
    """What a sweep folder holds after run_sweep: every trial's record in run order, the table
    grouped by config (best first) and the path of best.yaml (None if no trial finished)."""

    sweep_dir: Path
    spec: SweepSpec
    trials: list[TrialRecord]
    table: list[ConfigResult]
    best_config: Path | None

    @property
    def complete(self) -> bool:
        """True when no trial is left to run (an interrupted sweep can be resumed)."""
        return all(r.status in FINISHED for r in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the folder, whether complete, best.yaml, the table (best
        first, with n = the seeds that finished) and every trial's record."""
        return {"sweep_dir": str(self.sweep_dir), "name": self.spec.name,
                "complete": self.complete,
                "best_config": str(self.best_config) if self.best_config else None,
                "table": [{**asdict(row), "n": row.n} for row in self.table],
                "trials": [asdict(r) for r in self.trials]}


Resolve = Callable[[str, Overrides], dict[str, Any]]


@dataclass
class SweepPlan:
    """A sweep checked before anything runs: the spec (the saved one when resumed), every
    trial in run order with its resolved config, and the trials an earlier run finished."""

    spec: SweepSpec
    sweep_dir: Path
    resume: bool
    trials: list[Trial]
    configs: list[dict[str, Any]]
    kept: dict[str, TrialRecord]

    @property
    def todo(self) -> list[Trial]:
        """The trials still to run, in run order."""
        return [t for t in self.trials if t.trial_id not in self.kept]


def default_sweep_dir(name: str, now: datetime | None = None) -> Path:
    """sweeps/<sweep name>-<YYYYmmdd-HHMMSS> (relative to the working folder)."""
    return Path("sweeps") / f"{name}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def plan_sweep(spec: SweepSpec | None, sweep_dir: str | Path, *, resume: bool = False,
               resolve: Resolve = resolve_config) -> SweepPlan:
    """Check a sweep: the folder (new or empty; with resume, a sweep folder, whose saved
    sweep.yaml is the spec), and every trial's overrides against the config schema. Needs
    no Ray and writes nothing; ConfigError (one line naming the trial and key) if invalid."""
    sweep_dir = Path(sweep_dir).absolute()
    spec_file = sweep_dir / SPEC_FILE
    if resume:
        spec = _resumed_spec(spec, spec_file)
    elif spec is None:
        raise ConfigError("a sweep needs a sweep spec (or resume=True with a sweep folder)")
    else:
        _check_new_sweep_dir(sweep_dir)
    configs: list[dict[str, Any]] = []
    trials = expand(spec, validate=lambda ov: configs.append(resolve(spec.base, ov)))
    if spec.early_stopping is not None:
        _check_validation(spec, trials, configs)
    kept = {tid: r for tid, r in read_records(sweep_dir).items() if r.status in FINISHED}
    return SweepPlan(spec, sweep_dir, resume, trials, configs, kept)


def run_sweep(
    spec: SweepSpec | None,
    sweep_dir: str | Path,
    *,
    address: str | None = None,
    storage: str | None = None,
    resume: bool = False,
    on_event: Callable[[SweepEvent], None] | None = None,
    train_trial: Callable[..., dict[str, Any]] | None = None,
    resolve: Resolve = resolve_config,
) -> SweepResult:
    """Run a sweep into sweep_dir (new or empty), or with resume=True continue the one there.

    Everything plan_sweep checks is checked first, then that Ray is installed; only then is
    anything fetched (train_trial.prepare), written or started. `address` (else $RAY_ADDRESS)
    connects to a running Ray cluster; without it Ray starts on this machine for the sweep and
    stops after it. `storage` is where Ray keeps its own records (default: <sweep_dir>/ray).
    `train_trial` and `resolve` are the seams to the trainer and the config loader
    (cnncli.sweep.trial); the default, CnncliTrial(), trains as `cnncli train` does, on the
    data the config's data section names.
    """
    plan = plan_sweep(spec, sweep_dir, resume=resume, resolve=resolve)
    require_ray()
    spec, sweep_dir, trials, configs = plan.spec, plan.sweep_dir, plan.trials, plan.configs
    todo = plan.todo
    trial_fn = train_trial or CnncliTrial()
    if isinstance(trial_fn, CnncliTrial):  # its workers are the CPUs Ray gives a trial
        trial_fn = replace(trial_fn, threads=spec.cpus_per_trial)
    prepare = getattr(trial_fn, "prepare", None)
    if callable(prepare):  # e.g. fetch the data once, before anything is written
        for trial in distinct_data(todo, [c for t, c in zip(trials, configs, strict=True)
                                          if t.trial_id not in plan.kept]):
            prepare(spec.base, trial.all_overrides())
    if not resume:
        _make_folder(sweep_dir)
        _write_text(sweep_dir / SPEC_FILE, _spec_yaml(spec))
    emit = on_event or (lambda event: None)
    emit(SweepEvent("sweep_start", None, {"trials": len(trials), "to_run": len(todo),
                                          "kept": len(trials) - len(todo),
                                          "sweep_dir": str(sweep_dir)}))
    done: dict[str, TrialRecord] = {}
    if todo:
        done = _run(spec, trials, todo, trial_fn, sweep_dir, address, storage, configs, emit)
    kept = plan.kept
    records = [done.get(t.trial_id) or kept.get(t.trial_id)
               or TrialRecord.unfinished(t, sweep_dir / TRIALS / t.trial_id) for t in trials]
    write_records(sweep_dir, records)
    table = group_by_config(records)
    best = _write_best(spec, sweep_dir, table, trials, records, resolve)
    result = SweepResult(sweep_dir, spec, records, table, best)
    emit(SweepEvent("sweep_end", None, {"complete": result.complete,
                                        "best_config": str(best) if best else None}))
    return result


def resume_sweep(sweep_dir: str | Path, **options: Any) -> SweepResult:
    """Continue the sweep in sweep_dir: finished trials (ok, stopped, failed) are kept, the
    others run again, from their run folder's last.safetensors where there is one."""
    return run_sweep(None, sweep_dir, resume=True, **options)


def _run(spec: SweepSpec, trials: list[Trial], todo: list[Trial], trial_fn: Any,
         sweep_dir: Path, address: str | None, storage: str | None,
         configs: list[dict[str, Any]], emit: Callable[[SweepEvent], None]
         ) -> dict[str, TrialRecord]:
    from cnncli.sweep.ray_backend import TrialContext, run_trials

    context = TrialContext(trials={t.trial_id: t for t in trials}, base=spec.base,
                           train_trial=trial_fn, trials_dir=str(sweep_dir / TRIALS),
                           cwd=os.getcwd())
    epochs = {t.trial_id: c.get("train", {}).get("epochs")
              for t, c in zip(trials, configs, strict=True)}
    max_epochs = max((e for e in epochs.values() if isinstance(e, int)), default=1)
    where = storage if storage and "://" in storage else str(Path(storage or sweep_dir / "ray")
                                                              .absolute())

    def on_event(kind: str, tid: str, data: dict[str, Any]) -> None:
        if kind in ("trial_start", "epoch"):  # the trial's own train.epochs, for progress
            data = {**data, "epochs": epochs.get(tid)}
        emit(SweepEvent(kind, tid, data))

    return run_trials(spec, todo, context, sweep_dir, address=address, storage=where,
                      max_epochs=max_epochs, on_event=on_event)


# -- the sweep folder -------------------------------------------------------------------------


def _check_new_sweep_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        hint = (f"; to continue that sweep, resume it ({path / SPEC_FILE} is there)"
                if (path / SPEC_FILE).is_file() else "")
        raise ConfigError(f"{path}: folder exists and is not empty; choose a new sweep "
                          f"folder{hint}")


def _resumed_spec(given: SweepSpec | None, spec_file: Path) -> SweepSpec:
    if not spec_file.is_file():
        raise ConfigError(f"{spec_file.parent}: not a sweep folder ({SPEC_FILE} is missing)")
    data = safe_load(spec_file.read_text(encoding="utf-8"), str(spec_file))
    if not isinstance(data, dict):
        raise ConfigError(f"{spec_file}: expected a sweep mapping, received {quote(data)}")
    spec = validate_spec(data, source=str(spec_file))
    if given is not None and given.model_dump() != spec.model_dump():
        raise ConfigError(f"{spec_file}: a resumed sweep runs as it was saved; the sweep given "
                          "differs from it (start a new sweep folder for a different sweep)")
    return spec


def _spec_yaml(spec: SweepSpec) -> str:
    from cnncli import __version__

    head = (f"# the sweep as validated by cnncli {__version__} (resume reads it from here)\n")
    return head + yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def _check_validation(spec: SweepSpec, trials: list[Trial], configs: list[dict[str, Any]]
                      ) -> None:
    for trial, cfg in zip(trials, configs, strict=True):
        if cfg.get("train", {}).get("val_split") == 0:
            raise ConfigError(f"{spec.source}: early_stopping: ranks trials by validation "
                              f"accuracy, but trial {trial.trial_id} has train.val_split 0")


def _make_folder(path: Path) -> None:
    try:
        (path / TRIALS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: the sweep folder cannot be created ({exc.strerror})"
                          ) from None


def _write_text(path: Path, text: str) -> None:
    from cnncli.files import write_atomic

    write_atomic(path, text.encode())


def _write_best(spec: SweepSpec, sweep_dir: Path, table: list[ConfigResult],
                trials: list[Trial], records: list[TrialRecord], resolve: Resolve
                ) -> Path | None:
    top = table[0] if table and table[0].val_mean is not None else None
    if top is None:
        return None
    record = next(r for r in records if r.trial_id == top.best_trial)
    trial = next(t for t in trials if t.trial_id == top.best_trial)
    path = sweep_dir / BEST
    _write_text(path, best_yaml_text(spec.name, top, record,
                                     resolve(spec.base, trial.all_overrides())))
    return path
