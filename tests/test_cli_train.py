"""`cnncli train`, `eval` and `config`: bad input ends in one `Error:` line with the right exit
code and no traceback, nothing on disk is overwritten, and the happy paths work end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from synthetic_mnist import write_idx_folder

from cnncli.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from cnncli.cli import CnnGroup, cli
from cnncli.config import validate_config
from cnncli.data import MNIST
from cnncli.network import build_model
from cnncli.optim import build_optimizer

TINY = """\
model:
  layers:
    - {type: conv, filters: 4, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 4}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 32, val_split: 0.2}
"""


def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, out: str, err: str, expected_code: int, *needles: str
                          ) -> str:
    """Exit code as expected, stderr is one `Error: ...` line, no traceback anywhere."""
    assert code == expected_code, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under folder with its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def make_checkpoint(path: Path, text: str = TINY) -> Path:
    """A valid checkpoint of an untrained model (no data needed)."""
    cfg = validate_config(yaml.safe_load(text), source="x")
    rng = np.random.default_rng(0)
    net = build_model(cfg.run.model.input_shape, cfg.run.model.layers, rng=rng)
    opt = build_optimizer(cfg.run.optimizer, net.named_parameters())
    save_checkpoint(path, Checkpoint(config=cfg.resolved(), weights=net.state(),
                                     optimizer=opt.state_dict(), epoch=1, step=10,
                                     rng_state=rng.bit_generator.state,
                                     history=[{"epoch": 1, "lr": 0.01, "train_loss": 2.0,
                                               "train_acc": 0.2, "val_loss": 2.1,
                                               "val_acc": 0.2, "seconds": 1.0,
                                               "images_per_s": 300.0}],
                                     data={"dataset": "mnist", "folder": None, "files": {
                                         f.name: f.sha256 for f in MNIST.files}}))
    return path


# -- config errors: exit 2, before anything is written ---------------------------------------


@pytest.mark.parametrize("content, needles", [
    (None, ["not found", "presets: "]),
    ("", ["the file is empty"]),
    ("model: [\n", ["invalid YAML"]),
    (TINY.replace("epochs: 2", "epochs: two"),
     ["train.epochs: must be an integer, received 'two'"]),
    (TINY.replace("lr: 0.01", "learning_rate: 0.01"), ["optimizer.learning_rate: unknown key"]),
    (TINY.replace("kernel: 5", "kernel: 30"), ["model.layers[0] (conv): kernel 30x30"]),
    (TINY.replace("lr: 0.01", "lr: -0.1"), ["optimizer.lr: must be > 0, received -0.1"]),
])
def test_train_bad_config_is_one_error_line_exit_2_and_writes_nothing(tmp_path, content,
                                                                      needles):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    code, out, err = run("train", "--config", path, "--out", tmp_path / "run")
    line = assert_one_line_error(code, out, err, 2, *needles)
    if content is not None:
        assert str(path) in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needles", [
    (["--set", "train.epochs.max=3"], ["train.epochs is not a mapping"]),
    (["--set", "model.layers[9].units=3"], ["model.layers has 5 items, no index 9"]),
    (["--set", "optimizer..lr=3"], ["bad key path"]),
    (["--set", "optimizer.lr"], ["expected key.path=value"]),
    (["--set", "train.batchsize=3"], ["--set train.batchsize=3: train.batchsize: unknown key"]),
    (["--epochs", "0"], ["--epochs: train.epochs: must be >= 1, received 0"]),
    (["--lr", "-1"], ["--lr: optimizer.lr: must be > 0, received -1"]),
    (["--limit", "0"], ["--limit: train.limit: must be >= 1"]),
])
def test_train_bad_overrides_are_config_errors(tmp_path, config_file, args, needles):
    code, out, err = run("train", "--config", config_file, "--out", tmp_path / "run", *args)
    assert_one_line_error(code, out, err, 2, *needles)
    assert not (tmp_path / "run").exists()


def test_train_needs_a_config_or_a_checkpoint():
    code, out, err = run("train")
    assert_one_line_error(code, out, err, 2, "--config")


def test_train_refuses_a_non_empty_out_folder_and_leaves_it_alone(tmp_path, config_file):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    make_checkpoint(run_dir / "last.safetensors")
    before = snapshot(run_dir)
    code, out, err = run("train", "--config", config_file, "--out", run_dir)
    assert_one_line_error(code, out, err, 2, "not empty",
                          f"cnncli train --resume {run_dir / 'last.safetensors'}")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(("value", "needle"), [
    ("100000000000", "model.layers[8] (dense): units: must be <= 2.14748e+09, received "
                     "100000000000"),
    ("2000000000", "model.layers[8] (dense): the network grows to 802,000,002,572 parameters"),
    ("18446744073709551617", "units: must be <= 2.14748e+09"),
])
def test_a_network_too_big_for_memory_is_a_config_error(value, needle):
    for command in ("summary", "train", "config show"):
        code, out, err = run(*command.split(), "--config", "lenet", "--set",
                             f"model.layers[8].units={value}")
        assert_one_line_error(code, out, err, 2, needle)


def test_bad_float_and_seed_options_are_usage_errors():
    for args in (["gradcheck", "--tol", "nan"], ["gradcheck", "--seed", "-1"],
                 ["bench", "--config", "mlp", "--seed", "-1"]):
        code, out, err = run(*args)
        assert code == 2 and err.strip().splitlines()[-1].startswith("Error: Invalid value")


def test_resume_refuses_config_changes(tmp_path):
    ckpt = make_checkpoint(tmp_path / "last.safetensors")
    for args in (["--lr", "0.1"], ["--config", "lenet"], ["--set", "train.seed=2"],
                 ["--lr", "0"], ["--seed", "0"], ["--limit", "0"], ["--batch-size", "0"]):
        code, out, err = run("train", "--resume", ckpt, *args)
        assert_one_line_error(code, out, err, 2, "cannot be combined with --resume")


# -- checkpoint errors: exit 1, the file untouched --------------------------------------------


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = make_checkpoint(tmp_path / "good.safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("hello, not a checkpoint\n")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    other = make_checkpoint(tmp_path / "other.safetensors",
                            TINY.replace("filters: 4", "filters: 3"))
    mixed = read_checkpoint(other)
    mixed.config = read_checkpoint(good).config  # weights of one model, config of another
    save_checkpoint(other, mixed)
    return {
        "missing": (tmp_path / "nope.safetensors", "no such checkpoint file"),
        "not one": (text, "not a safetensors checkpoint"),
        "truncated": (truncated, "truncated or padded"),
        "other architecture": (other, "another architecture"),
    }


@pytest.mark.parametrize("kind", ["missing", "not one", "truncated", "other architecture"])
def test_bad_checkpoints_are_one_error_line_exit_1_and_stay_untouched(tmp_path, kind):
    path, needle = _bad_checkpoints(tmp_path)[kind]
    before = snapshot(tmp_path)
    for args in (["eval", path], ["train", "--resume", path, "--epochs", "5"]):
        code, out, err = run(*args)
        assert_one_line_error(code, out, err, 1, str(path), needle)
    assert snapshot(tmp_path) == before


# -- config show / schema ---------------------------------------------------------------------


def test_config_show_prints_the_resolved_config_with_overrides(config_file):
    code, out, err = run("config", "show", "--config", config_file, "--set", "train.seed=9")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["train"]["seed"] == 9
    assert shown["schedule"] == {"type": "constant", "warmup_epochs": 0.0}
    assert shown["model"]["layers"][0]["kernel"] == [5, 5]


def test_config_show_accepts_a_preset_name():
    code, out, _ = run("config", "show", "--config", "lenet5-classic")
    assert code == 0 and "avgpool" in out


def test_config_show_bad_set_is_an_error():
    code, out, err = run("config", "show", "--config", "lenet", "--set", "nope.x=1")
    assert_one_line_error(code, out, err, 2, "nope: unknown key")


def test_config_schema_is_json():
    code, out, _ = run("config", "schema")
    assert code == 0
    assert json.loads(out)["title"] == "cnncli run config"


# -- end to end on generated data --------------------------------------------------------------


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    """TINY on generated digits (400 train, 100 test) written as an IDX folder: `train` and
    `eval` read them through the ordinary data path, nothing is patched."""
    data = write_idx_folder(tmp_path / "digits")
    path = tmp_path / "tiny-digits.yaml"
    path.write_text(TINY + f"data: {{dataset: idx, data_dir: {data}}}\n")
    return path


def test_run_folder_that_cannot_be_created_is_one_error_line(tmp_path, generated):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run("train", "--config", generated, "--out", blocker / "run")
    assert_one_line_error(code, out, err, 1, f"run folder {blocker / 'run'}: cannot be created")
    assert blocker.read_text() == "not a folder"


def test_unforeseen_os_error_is_one_error_line_naming_the_file():
    group = CnnGroup()

    @group.command()
    def write() -> None:
        raise OSError(28, "No space left on device", "runs/x/config.yaml")

    result = CliRunner().invoke(group, ["write"])
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, 1,
                          "runs/x/config.yaml: No space left on device")


def test_train_writes_a_run_folder_and_eval_reads_it(tmp_path, generated):
    run_dir = tmp_path / "run"
    code, out, err = run("train", "--config", generated,
                         "--out", run_dir, "--seed", "1")
    assert code == 0, err
    assert "total parameters" in out  # the model table
    lines = out.splitlines()
    data = lines.index(next(ln for ln in lines if ln.startswith("data: ")))  # the data is named
    assert lines[data].startswith(f"data: idx folder {tmp_path / 'digits'} (train images "
                                  "sha256 "), lines[data]
    assert lines[data + 1] == "training: 320 training images, 80 validation"
    header = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["epoch", "train", "loss"])
    assert lines[header + 1].split()[0] == "1/2" and lines[header + 2].split()[0] == "2/2"
    assert f"run folder {run_dir}" in out.splitlines()[-2]
    assert out.splitlines()[-1] == f"report: {run_dir / 'report.html'}"
    assert {"config.yaml", "metrics.jsonl", "metrics.csv", "last.safetensors",
            "best.safetensors", "summary.json", "report.html", "curves.png", "confusion.png",
            "mistakes.png", "filters.png", "activations.png", ".cnncli-run.lock"} == {
                p.name for p in run_dir.iterdir()}
    summary = json.loads((run_dir / "summary.json").read_text())

    code, out, err = run("eval", run_dir / "best.safetensors")
    assert code == 0, err
    assert f"accuracy {100 * summary['test']['accuracy']:.2f}%" in out
    assert "confusion matrix" in out and "precision" in out

    code, out, err = run("eval", run_dir / "best.safetensors", "--json",
                         "--batch-size", "7")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert report["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-5)
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 100
    assert np.trace(cm) / 100 == pytest.approx(report["accuracy"])
    assert [c["support"] for c in report["per_class"]] == cm.sum(axis=1).tolist()


def test_quiet_train_prints_only_the_result_line(tmp_path, generated):
    code, out, err = run("train", "--config", generated,
                         "--out", tmp_path / "run", "--quiet", "--epochs", "1")
    assert code == 0, err
    result, folder, report = out.strip().splitlines()
    assert report == f"report: {tmp_path / 'run' / 'report.html'}"
    assert result.startswith("test accuracy ") and result.endswith("best epoch 1 (val " +
                                                                    result.split("(val ")[-1])
    assert folder == f"1 epoch in {folder.split(' in ')[1].split(';')[0]}; run folder " \
                     f"{tmp_path / 'run'}"


def test_cli_resume_continues_to_the_same_bits(tmp_path, generated):
    common = ["--quiet"]
    assert run("train", "--config", generated, "--out", tmp_path / "full", *common)[0] == 0
    assert run("train", "--config", generated, "--out", tmp_path / "half", "--epochs", "1",
               *common)[0] == 0
    code, out, err = run("train", "--resume", tmp_path / "half" / "last.safetensors",
                         "--epochs", "2", *common)
    assert code == 0, err
    a = read_checkpoint(tmp_path / "full" / "last.safetensors")
    b = read_checkpoint(tmp_path / "half" / "last.safetensors")
    for k in a.weights:
        assert np.array_equal(a.weights[k], b.weights[k])
    # resuming the finished run again without more epochs changes nothing
    before = snapshot(tmp_path / "half")
    code, out, err = run("train", "--resume", tmp_path / "half" / "last.safetensors", *common)
    assert_one_line_error(code, out, err, 2, "already finished its 2 epochs")
    assert snapshot(tmp_path / "half") == before


def test_eval_val_split_of_a_run_without_validation_is_an_error(tmp_path, generated):
    code, _, err = run("train", "--config", generated, "--out",
                       tmp_path / "run", "--epochs", "1", "--set", "train.val_split=0", "-q")
    assert code == 0, err
    code, out, err = run("eval", tmp_path / "run" / "last.safetensors", "--split", "val")
    assert_one_line_error(code, out, err, 2, "--split val")


def _train_then_ctrl_c(run_dir: Path, config_file: Path, presses: int) -> tuple[int, str]:
    """Start `cnncli train` (on generated data) in a subprocess, wait until the first epoch is
    written, press Ctrl-C `presses` times; -> (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnncli.cli", "train", "--config",
         str(config_file), "--out", str(run_dir), "--epochs", "1000", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "metrics.jsonl").exists():  # one epoch done: the loop is running
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_writes_a_resumable_checkpoint_and_exits_130(tmp_path, generated):
    run_dir = tmp_path / "run"
    code, err = _train_then_ctrl_c(run_dir, generated, presses=1)
    assert code == 130, err
    assert "Traceback" not in err
    assert "Ctrl-C: finishing this step" in err
    ckpt_path = run_dir / "last.safetensors"
    assert f"Resume with: cnncli train --resume {ckpt_path}" in err
    saved = read_checkpoint(ckpt_path)
    assert saved.epoch >= 1 and not (run_dir / "summary.json").exists()
    code, out, err = run("train", "--resume", ckpt_path, "--epochs", str(saved.epoch + 1),
                         "--quiet")
    assert code == 0, err
    assert read_checkpoint(ckpt_path).epoch == saved.epoch + 1


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_double_ctrl_c_exits_130_and_leaves_only_whole_checkpoints(tmp_path, generated):
    run_dir = tmp_path / "run"
    code, err = _train_then_ctrl_c(run_dir, generated, presses=2)
    assert code == 130, err
    assert "Traceback" not in err
    read_checkpoint(run_dir / "last.safetensors")  # whichever state it holds, it is whole
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# -- a custom IDX folder -------------------------------------------------------------------------

#: TINY at 30x32 on a custom IDX folder
IDX_CONFIG = (TINY.replace("model:\n", "model:\n  input_shape: [1, 30, 32]\n")
              + "data: {dataset: idx}\n")


def idx_folder(folder: Path) -> Path:
    """The generated digits padded to 30x32, as the four MNIST-named IDX files, uncompressed."""
    return write_idx_folder(folder, pad=((1, 1), (2, 2)))


def test_train_and_eval_on_a_custom_idx_folder_of_another_image_size(tmp_path):
    data = idx_folder(tmp_path / "digits")
    config = tmp_path / "idx.yaml"
    config.write_text(IDX_CONFIG)
    code, out, err = run("train", "--config", config, "--data-dir", data, "--out",
                         tmp_path / "run", "--quiet", "--epochs", "6", "--batch-size", "16")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["train_images"], summary["val_images"], summary["test"]["images"]) == (
        320, 80, 100)
    assert summary["test"]["accuracy"] > 0.5  # chance is 0.1
    code, out, err = run("eval", tmp_path / "run" / "best.safetensors", "--data-dir", data,
                         "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(summary["test"]["accuracy"])


def test_cnncli_data_dir_variable_does_not_override_the_configs_folder(tmp_path, monkeypatch):
    data = idx_folder(tmp_path / "digits")
    monkeypatch.setenv("CNNCLI_DATA_DIR", str(tmp_path / "elsewhere"))
    config = tmp_path / "idx.yaml"
    config.write_text(IDX_CONFIG.replace("{dataset: idx}", f"{{dataset: idx, data_dir: {data}}}"))
    code, out, err = run("train", "--config", config, "--out", tmp_path / "run", "--quiet",
                         "--epochs", "1")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_images"] == 320  # the idx folder's, not MNIST's
    assert not (tmp_path / "elsewhere").exists()


def test_custom_idx_folder_errors_name_the_fix(tmp_path):
    data = idx_folder(tmp_path / "digits")
    config = tmp_path / "idx.yaml"
    config.write_text(IDX_CONFIG.replace("[1, 30, 32]", "[1, 28, 28]"))
    code, out, err = run("train", "--config", config, "--data-dir", data, "--out",
                         tmp_path / "run")
    assert_one_line_error(code, out, err, 2, f"{data}: the images are 30x32, but "
                          "model.input_shape is [1, 28, 28]; set it to [1, 30, 32]")
    code, out, err = run("train", "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(code, out, err, 2, "data.dataset idx needs its folder")
    config.write_text(IDX_CONFIG.replace("[1, 30, 32]", "[3, 30, 32]"))
    code, out, err = run("train", "--config", config, "--data-dir", data)
    assert_one_line_error(code, out, err, 2, "model.input_shape: IDX images have one channel")
    (data / "t10k-labels-idx1-ubyte").unlink()
    config.write_text(IDX_CONFIG)
    code, out, err = run("train", "--config", config, "--data-dir", data, "--out",
                         tmp_path / "run")
    assert_one_line_error(code, out, err, 1, "t10k-labels-idx1-ubyte is missing")
    assert not (tmp_path / "run").exists()


# -- the network is built once per command ------------------------------------------------------


@pytest.fixture
def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts Network objects made (a spy around Network.__init__; behaviour unchanged)."""
    from cnncli.network import Network

    made = [0]
    real = Network.__init__

    def counting(self: Network, *args: object, **kwargs: object) -> None:
        made[0] += 1
        real(self, *args, **kwargs)

    monkeypatch.setattr(Network, "__init__", counting)
    return made


def test_each_command_builds_the_network_at_most_once(tmp_path, generated, count_builds):
    def builds(*args: object) -> int:
        count_builds[0] = 0
        code, out, err = run(*args)
        assert code == 0, err
        return count_builds[0]

    assert builds("train", "--config", generated, "--out", tmp_path / "r", "-q",
                  "--epochs", "1") == 1
    assert builds("train", "--resume", tmp_path / "r" / "last.safetensors", "--epochs", "2",
                  "-q") == 1
    assert builds("eval", tmp_path / "r" / "best.safetensors") == 1
    assert builds("summary", "--config", "lenet") == 0
    assert builds("config", "show", "--config", "lenet") == 0
    assert builds("gradcheck", "--config", "mlp", "--samples", "2") == 1
    assert builds("bench", "--config", "mlp", "--steps", "1", "--batch-size", "2") == 1
