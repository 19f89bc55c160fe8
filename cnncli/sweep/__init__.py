"""Sweeps: many configs and seeds at once, on Ray Tune (embedded, or a cluster by address).

    from cnncli.sweep import load_spec, plan_sweep, run_sweep, format_table
    plan = plan_sweep(load_spec("sweep.yaml"), "sweeps/lr")   # checked trials; no Ray needed
    result = run_sweep(load_spec("sweep.yaml"), "sweeps/lr")
    print(format_table(result.table))

spec.py (the sweep file schema and the command-line form), expand.py (spec -> trials),
trial.py (the seams to the config loader and the trainer), runner.py (plan_sweep, run_sweep,
resume), ray_backend.py (everything that imports Ray), results.py (records, table, best.yaml).
Importing this package does not import Ray.
"""

from cnncli.sweep.expand import Trial, expand
from cnncli.sweep.results import ConfigResult, TrialRecord, format_table, group_by_config
from cnncli.sweep.runner import (
    SweepEvent,
    SweepPlan,
    SweepResult,
    default_sweep_dir,
    plan_sweep,
    require_ray,
    resume_sweep,
    run_sweep,
)
from cnncli.sweep.spec import SweepSpec, load_spec, spec_from_options
from cnncli.sweep.trial import CnncliTrial, resolve_config

__all__ = [
    "CnncliTrial",
    "ConfigResult",
    "SweepEvent",
    "SweepPlan",
    "SweepResult",
    "SweepSpec",
    "Trial",
    "TrialRecord",
    "default_sweep_dir",
    "expand",
    "format_table",
    "group_by_config",
    "load_spec",
    "plan_sweep",
    "require_ray",
    "resolve_config",
    "resume_sweep",
    "run_sweep",
    "spec_from_options",
]
