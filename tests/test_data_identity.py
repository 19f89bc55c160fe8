"""A result names its data: a checkpoint records what it trained on, and eval/resume use
those very data (issue 10 items 1 and 2), from locations this command gives, never from the
checkpoint; registered datasets other than MNIST work end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_FASHION
from synthetic_mnist import write_idx_folder

from cnncli.checkpoint import read_checkpoint
from cnncli.cli import cli
from cnncli.data.idx import encode_idx

TINY = """\
model:
  layers:
    - {type: conv, filters: 4, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 4}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.01}
train: {epochs: 1, batch_size: 32, val_split: 0.2}
data: {dataset: idx}
"""


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(config, the data folder given with --data-dir at train time, the run folder)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    data = write_idx_folder(tmp_path / "odd" / "three")
    code, _, err = run("train", config, "--data-dir", data, "--out", tmp_path / "run", "-q")
    assert code == 0, err
    return config, data, tmp_path / "run"


def test_the_checkpoint_records_the_folder_and_hashes_of_its_idx_data(trained):
    _, data, run_dir = trained
    saved = read_checkpoint(run_dir / "best.safetensors")
    assert saved.data["dataset"] == "idx" and saved.data["folder"] == str(data.resolve())
    assert len(saved.data["files"]["train-images-idx3-ubyte"]) == 64
    assert saved.classes == [str(k) for k in range(10)]
    assert 0 < saved.mean < 1 and 0 < saved.std < 1  # the training split's own statistics


def test_eval_finds_the_recorded_folder_without_data_dir(trained):
    _, _, run_dir = trained
    summary = json.loads((run_dir / "summary.json").read_text())
    code, out, err = run("eval", run_dir / "best.safetensors", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert report["same_data"] is True


def test_eval_refuses_when_the_recorded_folder_now_holds_other_data(trained):
    _, data, run_dir = trained
    labels = np.zeros(100, dtype=np.uint8)
    (data / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels))  # the data changed
    code, out, err = run("eval", run_dir / "best.safetensors")
    assert code == 1 and "is not the data the run was trained on" in err
    assert "pass --data-dir to use other data on purpose" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_of_other_data_given_on_purpose_says_which_data_it_scored(trained, tmp_path):
    _, _, run_dir = trained
    other = write_idx_folder(tmp_path / "other", test=50)
    code, out, err = run("eval", run_dir / "best.safetensors", "--data-dir", other)
    assert code == 0, err
    assert f"note: using idx folder {other.resolve()}" in err and "not the run's own" in err
    code, out, err = run("eval", run_dir / "best.safetensors", "--data-dir", other, "--json")
    report = json.loads(out)
    assert report["same_data"] is False and report["images"] == 50


def test_report_and_plots_of_other_data_say_so_and_name_the_data_scored(trained, tmp_path):
    _, data, run_dir = trained
    other = write_idx_folder(tmp_path / "other", test=50)
    test_labels = "t10k-labels-idx1-ubyte"
    own_sha = read_checkpoint(run_dir / "best.safetensors").data["files"][test_labels]
    other_sha = hashlib.sha256((other / test_labels).read_bytes()).hexdigest()
    assert own_sha != other_sha
    code, out, err = run("report", run_dir, "--data-dir", other, "--out", tmp_path / "page")
    assert code == 0, err
    assert f"note: using idx folder {other.resolve()}" in err and "not the run's own" in err
    page = (tmp_path / "page" / "report.html").read_text()
    assert "the test metrics, confusion matrix, mistakes and feature maps are of other data" \
        in page
    assert other_sha in page and str(other.resolve()) in page
    for picture in ("confusion", "mistakes"):
        code, out, err = run("plot", picture, run_dir, "--data-dir", other, "--out", tmp_path)
        assert code == 0 and "not the run's own" in err, (picture, err)
    code, out, err = run("report", run_dir, "--out", tmp_path / "own")  # its own data: no note
    assert code == 0 and "note:" not in err, err
    page = (tmp_path / "own" / "report.html").read_text()
    assert "other data" not in page and own_sha in page


def test_resume_refuses_other_data_even_when_given_on_purpose(trained, tmp_path):
    _, _, run_dir = trained
    other = write_idx_folder(tmp_path / "other", test=50)
    code, _, err = run("train", "--resume", run_dir / "last.safetensors", "--epochs", "2",
                       "--data-dir", other, "-q")
    assert code == 1 and "--resume needs the data the run was trained on" in err


def test_resume_finds_moved_data_by_its_hashes(trained, tmp_path):
    _, data, run_dir = trained
    moved = tmp_path / "moved"
    shutil.move(data, moved)
    code, _, err = run("train", "--resume", run_dir / "last.safetensors", "--epochs", "2", "-q")
    assert code == 1 and "the run's data folder as the checkpoint recorded it: pass " \
        "--data-dir" in err, err
    code, _, err = run("train", "--resume", run_dir / "last.safetensors", "--epochs", "2",
                       "--data-dir", moved, "-q")
    assert code == 0, err


def test_a_checkpoint_never_decides_where_data_is_fetched_from_or_written(tmp_path,
                                                                          monkeypatch):
    """A checkpoint whose config names a data_dir and a mirror: eval uses neither."""
    from cnncli.checkpoint import save_checkpoint

    config = tmp_path / "c.yaml"
    decoy = tmp_path / "decoy"
    config.write_text(TINY.replace("data: {dataset: idx}",
                                   f"data: {{dataset: idx, data_dir: {decoy}, "
                                   f"mirrors: ['http://127.0.0.1:9/']}}"))
    data = write_idx_folder(tmp_path / "real")
    code, _, err = run("train", config, "--data-dir", data, "--out", tmp_path / "run", "-q")
    assert code == 0, err
    ckpt = read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt.config["data"]["data_dir"] == str(decoy)  # recorded as written...
    shutil.rmtree(data)
    code, _, err = run("eval", tmp_path / "run" / "best.safetensors")
    assert code == 1 and str(decoy) not in err  # ...but never used
    assert not decoy.exists()
    save_checkpoint  # noqa: B018  (imported to show nothing here writes checkpoints)


@pytest.mark.skipif(not SHARED_FASHION.is_dir(),
                    reason=f"Fashion-MNIST not found at {SHARED_FASHION}")
def test_fashion_mnist_trains_from_the_shared_mirror_and_eval_names_its_classes(tmp_path):
    code, out, err = run("train", "lenet", "--set", "data.dataset=fashion-mnist", "--mirror",
                         SHARED_FASHION, "--data-dir", tmp_path / "fashion", "--limit", "512",
                         "--epochs", "1", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    saved = read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert saved.data["dataset"] == "fashion-mnist" and saved.classes[9] == "Ankle boot"
    assert (saved.mean, saved.std) == (0.286, 0.353)
    code, out, err = run("eval", tmp_path / "run", "--data-dir", tmp_path / "fashion")
    assert code == 0, err
    assert "Ankle boot" in out and "T-shirt/top" in out
