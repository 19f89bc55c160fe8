"""`cnncli sweep` before Ray starts: which forms it accepts, one-line errors (exit 2) for bad
sweeps whether Ray is installed or not, the one-line install hint without Ray, --dry-run, and
a `cnncli --help` that never imports Ray. (Sweeps that run are in test_sweep_ray.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cnncli.cli import cli


def sweep(*args: str):
    return CliRunner().invoke(cli, ["sweep", *args])


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is absent


def test_without_ray_the_sweep_says_in_one_line_how_to_install_it(no_ray, tmp_path):
    result = sweep("--config", "lenet", "--grid", "optimizer.lr=1e-3,3e-3",
                   "--out", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        'Error: the sweep runs on Ray, which is not installed: pip install "cnncli[sweep]" '
        '(in a source checkout: pip install -e ".[sweep]")')
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, expected", [
    (["--config", "lenet", "--grid", "optimizer.lr=1e-3,0"],
     r"^Error: the command line: trial [0-9a-f]{8}: optimizer.lr=0: optimizer.lr: must be > 0, "
     r"received 0$"),
    (["--config", "lenet", "--grid", "optimizer.lrr=1"],
     r"^Error: .*optimizer.lrr: unknown key \(known: type, lr, "),
    (["--config", "lenet", "--set", "train.epochs=0"],
     r"^Error: .*train.epochs: must be >= 1, received 0$"),
    (["--config", "lenet", "--seeds", "0,-1"], r"^Error: --seeds: must be >= 0, received -1$"),
    (["--config", "nosuch"], r"^Error: .*'nosuch' not found: .*presets: .*lenet"),
    (["lenet"], r"^Error: lenet: cannot be read .*'lenet' is a preset: sweep it with --config"),
])
def test_a_bad_sweep_is_one_line_naming_the_key_before_ray_is_needed(no_ray, args, expected,
                                                                      tmp_path):
    result = sweep(*args, "--out", str(tmp_path / "s"))
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), lines
    assert not (tmp_path / "s").exists()


def test_a_bad_sweep_file_names_the_file_and_the_key(no_ray, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: lenet\ngrid: {optimizer.lr: [1e-3]}\nsedes: [0]\n")
    result = sweep(str(path))
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: {path}: sedes: unknown key (known: name, base, "
                                     "set, grid, random, samples, random_seed, seeds, "
                                     "early_stopping, max_concurrent, cpus_per_trial)")
    (tmp_path / "run.yaml").write_text("model: {layers: []}\n")
    result = sweep(str(tmp_path / "run.yaml"))
    assert result.exit_code == 2 and "is a training config, not a sweep file" in result.output


@pytest.mark.parametrize("args, expected", [
    ([], "say what to sweep: a sweep file"),
    (["s.yaml", "--config", "lenet"], "SWEEP_FILE and --config cannot be combined"),
    (["s.yaml", "--grid", "optimizer.lr=1,2"], "--grid cannot be combined with a sweep file"),
    (["--resume", "x", "--grid", "optimizer.lr=1,2"], "--grid cannot be combined with --resume"),
    (["--resume", "x", "--out", "y"], "--out cannot be combined with --resume"),
])
def test_one_form_at_a_time(args, expected):
    result = sweep(*args)
    assert result.exit_code == 2 and expected in result.output, result.output


def test_dry_run_lists_the_trials_and_writes_nothing(no_ray, tmp_path):
    out = tmp_path / "s"
    result = sweep("--config", "lenet", "--grid", "optimizer.lr=1e-3,3e-3", "--seeds", "0,1",
                   "--set", "train.epochs=1", "--out", str(out), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == 'sweep lenet (base lenet, set train.epochs=1): 4 trials'
    assert [ln.split()[1:] for ln in lines[1:5]] == [
        ["optimizer.lr=0.001", "seed=0"], ["optimizer.lr=0.003", "seed=0"],
        ["optimizer.lr=0.001", "seed=1"], ["optimizer.lr=0.003", "seed=1"]]
    assert not out.exists()
    data = json.loads(sweep("--config", "lenet", "--grid", "optimizer.lr=1e-3,3e-3",
                            "--out", str(out), "--dry-run", "--json").output)
    assert [t["overrides"] for t in data["trials"]] == [{"optimizer.lr": 0.001},
                                                        {"optimizer.lr": 0.003}]
    assert data["sweep_dir"] == str(out)


def test_dry_run_of_a_resume_marks_the_finished_trials(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.yaml").write_text("base: lenet\ngrid: {optimizer.lr: [1.0e-3, 3.0e-3]}\n")
    first = json.loads(sweep("--resume", str(folder), "--dry-run", "--json").output)["trials"]
    assert [t["to_run"] for t in first] == [True, True]
    (folder / "sweep.jsonl").write_text(json.dumps({
        "trial_id": first[1]["trial_id"], "config_id": first[1]["config_id"],
        "overrides": {"optimizer.lr": 0.003}, "seed": None, "status": "ok"}) + "\n")
    result = sweep("--resume", str(folder), "--dry-run")
    assert result.output.splitlines()[0].endswith("2 trials, 1 already finished")
    assert result.output.splitlines()[2].endswith("(finished)")


def test_cnncli_help_does_not_import_ray():
    code = ("import sys; from cnncli.cli import cli; from click.testing import CliRunner; "
            "r = CliRunner().invoke(cli, ['sweep', '--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
