"""cnncli.sweep.runner, the parts before Ray starts: a missing Ray is one line saying how to
install it, and every mistake in a sweep is refused before anything is created (whether Ray
is installed or not: these checks come first)."""

from __future__ import annotations

import sys

import pytest
from sweep_helpers import tiny_config

from cnncli.errors import CnnError, ConfigError
from cnncli.sweep.runner import INSTALL_HINT, require_ray, run_sweep
from cnncli.sweep.spec import validate_spec


def test_without_ray_the_sweep_says_in_one_line_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is absent
    with pytest.raises(CnnError) as info:
        require_ray()
    assert str(info.value) == INSTALL_HINT
    assert 'pip install "cnncli[sweep]"' in INSTALL_HINT
    spec = validate_spec({"base": "lenet"}, source="s.yaml")
    with pytest.raises(CnnError, match="not installed"):
        run_sweep(spec, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_a_bad_override_fails_before_the_sweep_folder_exists(tmp_path):
    spec = validate_spec({"base": "lenet", "grid": {"optimizer.lr": [0.001, 0]},
                          "seeds": [0, 1]}, source="s.yaml")
    with pytest.raises(ConfigError, match=r"^s.yaml: trial [0-9a-f]{8}-s0: optimizer.lr=0: "
                                          r"optimizer.lr: must be > 0, received 0$"):
        run_sweep(spec, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_early_stopping_needs_a_validation_split_in_every_trial(tmp_path):
    spec = validate_spec({"base": str(tiny_config(tmp_path)),
                          "grid": {"train.val_split": [0.2, 0.0]},
                          "early_stopping": {"asha": {"grace_period": 1,
                                                      "reduction_factor": 2}}},
                         source="s.yaml")
    with pytest.raises(ConfigError, match="early_stopping: ranks trials by validation accuracy, "
                                          "but trial .* has train.val_split 0"):
        run_sweep(spec, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_never_writes_into_a_non_empty_folder(tmp_path):
    spec = validate_spec({"base": "lenet"}, source="s.yaml")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="folder exists and is not empty; choose a new sweep "
                                          "folder$"):
        run_sweep(spec, tmp_path / "mine")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sweep.yaml").write_text("base: lenet\n")
    with pytest.raises(ConfigError, match="to continue that sweep, resume it"):
        run_sweep(spec, tmp_path / "old")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_resume_needs_a_sweep_folder_and_runs_the_sweep_saved_there(tmp_path):
    with pytest.raises(ConfigError, match="not a sweep folder \\(sweep.yaml is missing\\)"):
        run_sweep(None, tmp_path, resume=True)
    (tmp_path / "sweep.yaml").write_text("base: lenet\ngrid: {optimizer.lr: [0.1]}\n")
    other = validate_spec({"base": "lenet", "grid": {"optimizer.lr": [0.2]}}, source="s.yaml")
    with pytest.raises(ConfigError, match="the sweep given differs from it"):
        run_sweep(other, tmp_path, resume=True)
    (tmp_path / "sweep.yaml").write_text("base: lenet\ngrid: {optimizer.lr: [0.1]}\nsedes: 1\n")
    with pytest.raises(ConfigError, match="sweep.yaml: sedes: unknown key"):
        run_sweep(None, tmp_path, resume=True)
