"""A SweepSpec -> the list of trials it means, each checked against the config schema.

    trials = expand(spec, validate=lambda overrides: load_config(spec.base, overrides))

Order: every config (grid points in the order the file lists keys and values, each with
every random draw) for the first seed, then all of them for the next seed, so an
interrupted sweep has seen every config once before it repeats any.

A trial's id is `<config id>-s<seed>` (or the config id alone without seeds), where the
config id is the first 8 hex digits of the SHA-256 of its overrides (what varies; the fixed
`set:` is the same in every trial) as canonical JSON: the same overrides give the same id in
every run, which is how `resume` finds its trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.errors import ConfigError
from cnncli.sweep.spec import Distribution, SweepSpec

#: one override: (key path as the user wrote it, value), e.g. ('optimizer.lr', 0.001)
Overrides = Sequence[tuple[str, Any]]
#: checks a full override list (seed included) against the config schema; raises ConfigError
Validate = Callable[[Overrides], object]

#: the key a trial's seed is applied at
SEED_KEY = "train.seed"
#: significant digits a random draw is rounded to (readable ids, tables and folder names)
DRAW_DIGITS = 6


@dataclass(frozen=True)
class Trial:
    """One training of the sweep: overrides on the base config, and a seed."""

    trial_id: str
    config_id: str
    overrides: tuple[tuple[str, Any], ...]  # what varies, without the seed
    seed: int | None
    #: the sweep's fixed overrides (`set:`), the same in every trial
    fixed: tuple[tuple[str, Any], ...] = ()

    def config_overrides(self) -> list[tuple[str, Any]]:
        """The overrides of the trial's config but the seed: the fixed ones, then its own."""
        return [*self.fixed, *self.overrides]

    def all_overrides(self) -> list[tuple[str, Any]]:
        """The overrides the trial trains with: the fixed ones, its own, then train.seed."""
        seed = [] if self.seed is None else [(SEED_KEY, self.seed)]
        return [*self.config_overrides(), *seed]

    def describe(self) -> str:
        """'optimizer.lr=0.001 train.batch_size=32 seed=0', for messages and tables."""
        parts = [f"{k}={_show(v)}" for k, v in self.overrides]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return " ".join(parts) or "(base config)"


def _show(value: Any) -> str:
    return json.dumps(value, default=repr) if not isinstance(value, str) else value


def config_id(overrides: Overrides) -> str:
    """8 hex digits of SHA-256 over the overrides as canonical JSON (order kept)."""
    text = json.dumps([[k, v] for k, v in overrides], sort_keys=True, separators=(",", ":"),
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def draw(dist: Distribution, rng: np.random.Generator) -> Any:
    """One value from a distribution. uniform with two ints draws integers lo..hi (both
    included); floats are rounded to DRAW_DIGITS significant digits."""
    if dist.choice is not None:
        return dist.choice[int(rng.integers(len(dist.choice)))]
    if dist.uniform is not None:
        lo, hi = dist.uniform
        if isinstance(lo, int) and isinstance(hi, int):
            return int(rng.integers(lo, hi + 1))
        return _round(float(rng.uniform(lo, hi)))
    assert dist.loguniform is not None
    lo, hi = dist.loguniform
    return _round(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _round(x: float) -> float:
    return float(f"{x:.{DRAW_DIGITS}g}")


def config_points(spec: SweepSpec) -> list[tuple[tuple[str, Any], ...]]:
    """Every config of the sweep as its override tuple: grid points x random draws."""
    grid_keys = list(spec.grid)
    grid = [tuple(zip(grid_keys, values, strict=True))
            for values in itertools.product(*(spec.grid[k] for k in grid_keys))]
    rng = np.random.default_rng(spec.random_seed)
    draws: list[tuple[tuple[str, Any], ...]] = [()]
    if spec.random:
        assert spec.samples is not None
        draws = [tuple((k, draw(d, rng)) for k, d in spec.random.items())
                 for _ in range(spec.samples)]
    points, seen = [], set()
    for g, r in itertools.product(grid, draws):
        point = g + r
        key = config_id(point)
        if key not in seen:  # two equal random draws (choice) are one config
            seen.add(key)
            points.append(point)
    return points


def expand(spec: SweepSpec, validate: Validate | None = None) -> list[Trial]:
    """The trials of a sweep in run order; with `validate`, every trial's overrides are
    checked before this returns (the first bad one raises ConfigError naming the trial)."""
    seeds: list[int | None] = list(spec.seeds) if spec.seeds is not None else [None]
    points = config_points(spec)
    trials = []
    for seed in seeds:
        for point in points:
            cid = config_id(point)
            tid = cid if seed is None else f"{cid}-s{seed}"
            trials.append(Trial(tid, cid, point, seed, tuple(spec.set.items())))
    if validate is not None:
        for trial in trials:
            try:
                validate(trial.all_overrides())
            except ConfigError as exc:
                raise ConfigError(f"{spec.source}: trial {trial.trial_id}: {exc}") from None
    return trials
