"""cnncli.sweep.spec: a sweep file and the command-line form give the same validated object,
and every mistake is one ConfigError line naming the file (or option) and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnncli.errors import ConfigError
from cnncli.sweep.spec import load_spec, spec_from_options, validate_spec


def error_of(data: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        validate_spec(data, source="s.yaml", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("data, expected", [
    ({"grid": {}}, "s.yaml: base: is required"),
    ({"base": "lenet", "gird": {}},
     "s.yaml: gird: unknown key (known: name, base, set, grid, random, samples, random_seed, "
     "seeds, early_stopping, max_concurrent, cpus_per_trial)"),
    ({"base": "lenet", "grid": {"optimizer.lr": 0.001}},
     "s.yaml: grid.optimizer.lr: must be a non-empty list, received 0.001"),
    ({"base": "lenet", "grid": {"optimizer.lr": []}},
     "s.yaml: grid.optimizer.lr: must be a non-empty list, received []"),
    ({"base": "lenet", "grid": {"optimizer.lr": [0.1, 0.2, 0.1]}},
     "s.yaml: grid.optimizer.lr: lists 0.1 twice"),
    ({"base": "lenet", "grid": {"optimizer..lr": [1]}},
     "s.yaml: grid.optimizer..lr: bad key path 'optimizer..lr'"),
    ({"base": "lenet", "grid": {"train.seed": [1, 2]}},
     "s.yaml: grid.train.seed: give the seeds with seeds: [...] (--seeds), not as an "
     "override"),
    ({"base": "lenet", "grid": {"optimizer.lr": [1]}, "random": {"optimizer.lr": {"choice": [2]}},
      "samples": 1}, "s.yaml: random.optimizer.lr: is also in grid"),
    ({"base": "lenet", "random": {"optimizer.lr": {"uniform": [0.1, "x"]}}, "samples": 2},
     "s.yaml: random.optimizer.lr.uniform[1]: must be a number, received 'x'"),
    ({"base": "lenet", "random": {"optimizer.lr": {"uniform": [0.1]}}, "samples": 2},
     "s.yaml: random.optimizer.lr.uniform: must have at least 2 items, received [0.1]"),
    ({"base": "lenet", "random": {"optimizer.lr": {"uniform": [2, 1]}}, "samples": 2},
     "s.yaml: random.optimizer.lr: uniform: needs lo < hi, received [2, 1]"),
    ({"base": "lenet", "random": {"optimizer.lr": {"loguniform": [0, 1]}}, "samples": 2},
     "s.yaml: random.optimizer.lr: loguniform: needs lo > 0, received [0.0, 1.0]"),
    ({"base": "lenet", "random": {"optimizer.lr": {"normal": [0, 1]}}, "samples": 2},
     "s.yaml: random.optimizer.lr.normal: unknown key (known: uniform, loguniform, choice)"),
    ({"base": "lenet", "random": {"optimizer.lr": {"uniform": [0, 1], "choice": [1]}},
      "samples": 2}, "s.yaml: random.optimizer.lr: needs exactly one of uniform"),
    ({"base": "lenet", "random": {"optimizer.lr": {"choice": [1, 2]}}},
     "s.yaml: samples: is required with random"),
    ({"base": "lenet", "samples": 3}, "s.yaml: samples: needs random"),
    ({"base": "lenet", "random": {"optimizer.lr": {"choice": [1]}}, "samples": 0},
     "s.yaml: samples: must be >= 1, received 0"),
    ({"base": "lenet", "seeds": [0, -1]}, "s.yaml: seeds[1]: must be >= 0, received -1"),
    ({"base": "lenet", "seeds": [3, 3]}, "s.yaml: seeds: lists a seed twice, received [3, 3]"),
    ({"base": "lenet", "seeds": 3}, "s.yaml: seeds: must be a non-empty list, received 3"),
    ({"base": "lenet", "early_stopping": {"asha": {"grace_period": 1}}},
     "s.yaml: early_stopping.asha.reduction_factor: is required"),
    ({"base": "lenet", "early_stopping": {"asha": {"grace_period": 1, "reduction_factor": 1}}},
     "s.yaml: early_stopping.asha.reduction_factor: must be > 1, received 1"),
    ({"base": "lenet", "early_stopping": {"asha": {"grace_period": 3, "reduction_factor": 2,
                                                   "max_t": 2}}},
     "s.yaml: early_stopping.asha: max_t: must be >= grace_period (3), received 2"),
    ({"base": "lenet", "early_stopping": {"hyperband": {}}},
     "s.yaml: early_stopping.hyperband: unknown key (known: asha)"),
    ({"base": "lenet", "max_concurrent": 0}, "s.yaml: max_concurrent: must be >= 1, received 0"),
    ({"base": "lenet", "cpus_per_trial": 1.5},
     "s.yaml: cpus_per_trial: must be an integer, received 1.5"),
    ({"base": "lenet", "name": "my sweep"},
     "s.yaml: name: must be 1 to 64 letters, digits, '.', '_' or '-', received 'my sweep'"),
])
def test_spec_errors_are_one_line_naming_the_key_and_the_value(data, expected):
    assert error_of(data).startswith(expected)


def test_a_full_sweep_file_validates_with_its_defaults(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("base: lenet\n"
                    "grid: {optimizer.lr: [3e-4, 1e-3], train.batch_size: [32, 64]}\n"
                    "random:\n"
                    "  optimizer.weight_decay: {loguniform: [1e-5, 1e-2]}\n"
                    "  schedule.warmup_epochs: {uniform: [0, 2]}\n"
                    "  schedule.type: {choice: [constant, cosine]}\n"
                    "samples: 3\nseeds: [0, 1, 2]\n"
                    "early_stopping: {asha: {grace_period: 2, reduction_factor: 3}}\n")
    spec = load_spec(path)
    assert spec.name == "lr"  # the file's stem
    assert spec.grid == {"optimizer.lr": [0.0003, 0.001], "train.batch_size": [32, 64]}
    assert spec.random["optimizer.weight_decay"].loguniform == [1e-5, 1e-2]
    assert spec.random["schedule.warmup_epochs"].uniform == [0, 2]
    assert all(isinstance(v, int) for v in spec.random["schedule.warmup_epochs"].uniform)
    assert spec.early_stopping.asha.max_t is None
    assert (spec.samples, spec.seeds, spec.cpus_per_trial, spec.max_concurrent) == (
        3, [0, 1, 2], 1, None)
    assert spec.source == str(path)


def test_exponent_numbers_without_a_dot_are_numbers_as_in_configs(tmp_path):
    # read by cnncli.config's YAML loader (YAML 1.2 floats), in files and options alike
    path = tmp_path / "s.yaml"
    path.write_text("base: lenet\ngrid: {optimizer.lr: [3e-4, 1E3]}\n"
                    "random: {optimizer.weight_decay: {choice: [1e-5, -2.5e+2]}}\nsamples: 1\n")
    spec = load_spec(path)
    assert spec.grid["optimizer.lr"] == [0.0003, 1000.0]
    assert spec.random["optimizer.weight_decay"].choice == [1e-5, -250.0]
    assert spec_from_options("lenet", grid=["optimizer.lr=3e-4,1e3"]).grid == {
        "optimizer.lr": [0.0003, 1000.0]}


def test_the_command_line_form_builds_the_same_spec_as_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase: lenet\ngrid:\n  optimizer.lr: [3e-4, 1e-3, 3e-3]\n"
                    "  train.batch_size: [32, 64]\nseeds: [0, 1, 2]\n")
    options = spec_from_options("lenet", grid=["optimizer.lr=3e-4,1e-3,3e-3",
                                               "train.batch_size=32,64"],
                                seeds="0,1,2", name="s")
    assert options.model_dump() == load_spec(path).model_dump()
    assert isinstance(options.grid["train.batch_size"][0], int)
    assert isinstance(options.grid["optimizer.lr"][0], float)


def test_set_fixes_overrides_of_every_trial_in_a_file_and_on_the_command_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: lenet\nset: {train.epochs: 1, 'optimizer': {type: sgd, lr: 0.1}}\n"
                    "grid: {optimizer.momentum: [0.0, 0.9]}\n")
    options = spec_from_options("lenet", grid=["optimizer.momentum=0.0,0.9"], name="s",
                                overrides=["train.epochs=1", "optimizer={type: sgd, lr: 0.1}"])
    assert options.model_dump() == load_spec(path).model_dump()
    assert options.set == {"train.epochs": 1, "optimizer": {"type": "sgd", "lr": 0.1}}


def test_a_sweep_is_named_after_its_file_or_its_config(tmp_path):
    (tmp_path / "my lr.yaml").write_text("base: lenet\n")
    assert load_spec(tmp_path / "my lr.yaml").name == "my-lr"
    assert spec_from_options("lenet").name == "lenet"
    (tmp_path / "small.yml").write_text("")
    assert spec_from_options(str(tmp_path / "small.yml")).name == "small"


def test_command_line_values_are_yaml_so_lists_and_text_work():
    spec = spec_from_options("lenet", grid=["optimizer.betas=[0.9,0.99],[0.8,0.9]",
                                            "schedule.type=constant,cosine"])
    assert spec.grid == {"optimizer.betas": [[0.9, 0.99], [0.8, 0.9]],
                         "schedule.type": ["constant", "cosine"]}


@pytest.mark.parametrize("kwargs, expected", [
    ({"grid": ["optimizer.lr"]}, "--grid 'optimizer.lr': expected key.path=value1,value2"),
    ({"grid": ["optimizer.lr="]}, "--grid 'optimizer.lr=': expected key.path=value1,value2"),
    ({"grid": ["optimizer.lr=1", "optimizer.lr=2"]}, "--grid optimizer.lr: given twice"),
    ({"grid": ["optimizer.lr=1,1"]}, "--grid optimizer.lr: lists 1 twice"),
    ({"grid": ["optimizer.lr=[1"]}, "--grid optimizer.lr: invalid YAML"),
    ({"grid": ["train.seed=1,2"]}, "--grid train.seed: give the seeds with seeds: [...]"),
    ({"overrides": ["train.epochs"]}, "--set 'train.epochs': expected key.path=value"),
    ({"overrides": ["train.seed=3"]}, "--set train.seed: give the seeds with seeds: [...]"),
    ({"overrides": ["optimizer.lr=0.1"], "grid": ["optimizer.lr=1,2"]},
     "--set optimizer.lr: also varies in the sweep; a key is fixed (set) or varies"),
    ({"seeds": "0,-1"}, "--seeds: must be >= 0, received -1"),
    ({"seeds": "a"}, "--seeds: must be an integer, received 'a'"),
    ({"name": "a b"}, "--name: must be 1 to 64 letters"),
    ({"cpus_per_trial": 0}, "--cpus-per-trial: must be >= 1, received 0"),
])
def test_command_line_errors_name_the_option(kwargs, expected):
    with pytest.raises(ConfigError) as info:
        spec_from_options("lenet", **kwargs)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_a_base_config_file_is_found_relative_to_the_sweep_file_and_made_absolute(
        tmp_path, monkeypatch):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("model: {layers: []}\n")
    (tmp_path / "sweeps" / "s.yaml").write_text("base: ../configs/mine.yaml\n")
    monkeypatch.chdir(Path("/"))
    spec = load_spec(tmp_path / "sweeps" / "s.yaml")
    assert spec.base == str((tmp_path / "configs" / "mine.yaml").resolve())
    (tmp_path / "sweeps" / "p.yaml").write_text("base: lenet\n")
    assert load_spec(tmp_path / "sweeps" / "p.yaml").base == "lenet"  # presets stay names


@pytest.mark.parametrize("text, expected", [
    ("- base\n", "the top level must be a mapping"),
    ("base: [lenet\n", "invalid YAML"),
    ("", "the top level must be a mapping"),
])
def test_sweep_file_errors_name_the_file(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_spec(tmp_path / "missing.yaml")
