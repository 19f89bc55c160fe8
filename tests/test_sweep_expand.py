"""cnncli.sweep.expand: grid x random draws x seeds in a fixed order, ids that do not change
between runs, and every trial checked before any starts."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import pytest

from cnncli.errors import ConfigError
from cnncli.sweep.expand import expand
from cnncli.sweep.spec import validate_spec
from cnncli.sweep.trial import resolve_config


def spec(**data):
    return validate_spec({"base": "lenet", **data}, source="s.yaml")


def test_trial_ids_are_a_hash_of_the_overrides_as_canonical_json_plus_the_seed():
    trials = expand(spec(grid={"optimizer.lr": [0.001]}, seeds=[0, 7]))
    by_hand = hashlib.sha256(b'[["optimizer.lr",0.001]]').hexdigest()[:8]
    assert [t.trial_id for t in trials] == [f"{by_hand}-s0", f"{by_hand}-s7"]
    assert {t.config_id for t in trials} == {by_hand}
    assert trials[1].all_overrides() == [("optimizer.lr", 0.001), ("train.seed", 7)]
    # without seeds: one trial per config, the base config's own seed, the config id alone
    (alone,) = expand(spec(grid={"optimizer.lr": [0.001]}))
    assert (alone.trial_id, alone.seed, alone.all_overrides()) == (
        by_hand, None, [("optimizer.lr", 0.001)])


def test_grid_order_is_keys_then_values_as_written_with_seeds_outermost():
    trials = expand(spec(grid={"optimizer.lr": [0.1, 0.2], "train.batch_size": [32, 64]},
                         seeds=[5, 6]))
    assert [(dict(t.overrides), t.seed) for t in trials] == [
        ({"optimizer.lr": lr, "train.batch_size": bs}, seed)
        for seed in (5, 6) for lr in (0.1, 0.2) for bs in (32, 64)]
    assert len({t.trial_id for t in trials}) == 8
    assert trials[0].describe() == "optimizer.lr=0.1 train.batch_size=32 seed=5"


def test_random_draws_combine_with_every_grid_point_and_stay_in_their_ranges():
    s = spec(grid={"train.batch_size": [32, 64]},
             random={"optimizer.lr": {"loguniform": [1e-4, 1e-2]},
                     "schedule.warmup_epochs": {"uniform": [0, 3]},
                     "optimizer.weight_decay": {"uniform": [0.0, 0.5]},
                     "schedule.type": {"choice": ["constant", "cosine"]}},
             samples=5, seeds=[0, 1])
    trials = expand(s)
    assert len(trials) == 2 * 5 * 2
    configs = [dict(t.overrides) for t in trials if t.seed == 0]
    assert [c["train.batch_size"] for c in configs] == [32] * 5 + [64] * 5
    draws = [{k: v for k, v in c.items() if k != "train.batch_size"} for c in configs]
    assert draws[:5] == draws[5:]  # the same draws with every grid point
    assert [dict(t.overrides) for t in trials if t.seed == 1] == configs
    draws = draws[:5]
    for d in draws:
        assert 1e-4 <= d["optimizer.lr"] <= 1e-2
        assert d["schedule.warmup_epochs"] in (0, 1, 2, 3)
        assert isinstance(d["schedule.warmup_epochs"], int)
        assert 0.0 <= d["optimizer.weight_decay"] <= 0.5
        assert d["schedule.type"] in ("constant", "cosine")
        assert d["optimizer.lr"] == float(f"{d['optimizer.lr']:.6g}")  # 6 significant digits
    assert len({d["optimizer.lr"] for d in draws}) == 5
    assert [t.trial_id for t in expand(s)] == [t.trial_id for t in trials]  # same file, same
    other = expand(s.model_copy(update={"random_seed": 1}))
    assert {t.trial_id for t in other}.isdisjoint(t.trial_id for t in trials)


def test_loguniform_draws_spread_evenly_in_log_space():
    s = spec(random={"optimizer.lr": {"loguniform": [1e-6, 1.0]}}, samples=2000)
    logs = [math.log10(dict(t.overrides)["optimizer.lr"]) for t in expand(s)]
    below = sum(x < -3 for x in logs) / len(logs)  # half the log range lies below 1e-3
    assert 0.45 < below < 0.55


def test_equal_random_draws_are_one_config():
    trials = expand(spec(random={"schedule.type": {"choice": ["cosine"]}}, samples=4))
    assert [dict(t.overrides) for t in trials] == [{"schedule.type": "cosine"}]


def test_ids_do_not_depend_on_the_process(tmp_path):
    code = ("from cnncli.sweep.expand import expand; from cnncli.sweep.spec import validate_spec;"
            "s = validate_spec({'base': 'lenet', 'grid': {'optimizer.lr': [0.001, 0.01]},"
            "'random': {'optimizer.weight_decay': {'uniform': [0.0, 0.1]}}, 'samples': 2,"
            "'seeds': [0]}, source='x'); print(' '.join(t.trial_id for t in expand(s)))")
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONHASHSEED": seed}, check=True).stdout
           for seed in ("1", "2")}
    assert len(out) == 1
    s = spec(grid={"optimizer.lr": [0.001, 0.01]},
             random={"optimizer.weight_decay": {"uniform": [0.0, 0.1]}}, samples=2, seeds=[0])
    assert out == {" ".join(t.trial_id for t in expand(s)) + "\n"}


def test_every_trial_is_validated_with_its_seed_before_expand_returns():
    seen = []
    trials = expand(spec(grid={"optimizer.lr": [0.1, 0.2]}, seeds=[0, 1]), validate=seen.append)
    assert seen == [t.all_overrides() for t in trials]


def test_the_first_invalid_trial_raises_one_line_naming_trial_key_and_value():
    s = spec(grid={"optimizer.lr": [0.001, -1]}, seeds=[0])
    with pytest.raises(ConfigError) as info:
        expand(s, validate=lambda ov: resolve_config(s.base, ov))
    message = str(info.value)
    bad = next(t for t in expand(s) if dict(t.overrides)["optimizer.lr"] == -1)
    assert message == (f"s.yaml: trial {bad.trial_id}: optimizer.lr=-1: optimizer.lr: must be "
                       "> 0, received -1")


@pytest.mark.parametrize("grid, expected", [
    ({"train.epohcs": [1]}, "train.epohcs: unknown key (known: epochs,"),
    ({"model.layers[0].filters": [0]},
     "model.layers[0].filters=0: model.layers[0] (conv): filters: must be >= 1, received 0"),
    ({"optimizer.type": ["rmsprop"]},
     "optimizer.type: unknown optimizer 'rmsprop' (known: adam, sgd)"),
])
def test_schema_errors_of_the_config_loader_reach_the_sweep(grid, expected):
    s = spec(grid=grid)
    with pytest.raises(ConfigError, match="^s.yaml: trial [0-9a-f]{8}: ") as info:
        expand(s, validate=lambda ov: resolve_config(s.base, ov))
    assert expected in str(info.value)
