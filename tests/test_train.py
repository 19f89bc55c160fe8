"""The training loop: exact resume, determinism, run folder, early stops, NaN, real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import SHARED_MNIST
from synthetic_mnist import make_digits

from cnncli.checkpoint import read_checkpoint
from cnncli.config import Override, load_config, validate_config
from cnncli.data.source import ArraySource, FetchingSource
from cnncli.data.split import make_dataset, split_indices
from cnncli.errors import ConfigError, TrainingError
from cnncli.metrics import confusion_matrix, per_class
from cnncli.training import (
    Callbacks,
    StopFlag,
    TrainingInterrupted,
    TrainPlan,
    best_epoch,
    plan_training,
    run_training,
)
from cnncli.training.folder import remove_if_empty, reserve_run_dir
from cnncli.training.resume import plan_resume

TINY = """\
model:
  layers:
    - {type: conv, filters: 4, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 4}
    - {type: flatten}
    - {type: dropout, rate: 0.1}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.01}
schedule: {type: step, every_epochs: 1, gamma: 0.5, warmup_epochs: 0.5}
train: {epochs: 2, batch_size: 32, val_split: 0.2, seed: 3}
"""
TIMING = ("seconds", "images_per_s")


@pytest.fixture(scope="module")
def digits() -> ArraySource:
    """400 generated training images (320 train, 80 validation at TINY's split), 100 test."""
    train_images, train_labels = make_digits(400, seed=0)
    test_images, test_labels = make_digits(100, seed=1)
    return ArraySource.of(train_images, train_labels, test_images, test_labels)


def _cfg(text: str = TINY, *sets: str):
    return validate_config(yaml.safe_load(text), source="tiny.yaml", name="tiny",
                           overrides=[Override.parse(s) for s in sets])


def _train(data: ArraySource, run_dir: Path, *sets: str, text: str = TINY, **fit) -> dict:
    return run_training(TrainPlan(_cfg(text, *sets), run_dir), data, **fit)


def _resume(data: ArraySource, ckpt: Path, epochs: int | None = None, **fit) -> dict:
    return run_training(plan_training(resume=ckpt, epochs=epochs), data, **fit)


def _train_images(data: ArraySource, val_split: float = 0.2) -> int:
    return len(split_indices(len(data.arrays.train_labels), val_split)[0])


def _assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, optimizer state, generator state and (non-timing) metrics."""
    ca, cb = read_checkpoint(a / "last.safetensors"), read_checkpoint(b / "last.safetensors")
    assert ca.weights.keys() == cb.weights.keys()
    for k in ca.weights:
        assert np.array_equal(ca.weights[k], cb.weights[k]), k
    for k in ca.optimizer:
        assert np.array_equal(ca.optimizer[k], cb.optimizer[k]), k
    assert ca.rng_state == cb.rng_state
    assert (ca.epoch, ca.step) == (cb.epoch, cb.step)

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    assert strip(ca.history) == strip(cb.history)
    la = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert strip(la) == strip(lb) == strip(ca.history)


class _StopAt(Callbacks):
    """Simulates Ctrl-C: sets the stop flag once (epoch, batch) has been trained."""

    def __init__(self, flag: StopFlag, epoch: int, batch: int) -> None:
        self.flag, self.at = flag, (epoch, batch)

    def on_step(self, epoch, batch, loss, accuracy, images_per_s):
        if (epoch, batch) == self.at:
            self.flag.requested = True


def test_two_epochs_equal_one_epoch_then_resume_for_one_more(digits, tmp_path):
    _train(digits, tmp_path / "full")
    _train(digits, tmp_path / "split", "train.epochs=1")
    _resume(digits, tmp_path / "split" / "last.safetensors", epochs=2)
    _assert_same_run(tmp_path / "full", tmp_path / "split")


@pytest.mark.parametrize("epoch, batch", [(1, 4), (2, 1)])
def test_interrupted_mid_epoch_then_resumed_is_bit_identical(digits, tmp_path, epoch, batch):
    cosine = TINY.replace("{type: step, every_epochs: 1, gamma: 0.5, warmup_epochs: 0.5}",
                          "{type: cosine}")
    _train(digits, tmp_path / "full", text=cosine)
    flag = StopFlag()
    with pytest.raises(TrainingInterrupted) as info:
        _train(digits, tmp_path / "cut", text=cosine, callbacks=_StopAt(flag, epoch, batch),
               stop=flag)
    assert info.value.checkpoint == tmp_path / "cut" / "last.safetensors"
    assert info.value.exit_code == 130
    saved = read_checkpoint(info.value.checkpoint)
    assert saved.progress is not None and saved.progress["batch"] == batch
    assert not (tmp_path / "cut" / "summary.json").exists()
    _resume(digits, info.value.checkpoint)
    _assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_interrupt_on_the_last_batch_checkpoints_the_finished_epoch(digits, tmp_path):
    flag = StopFlag()
    batches = -(-_train_images(digits) // 32)
    with pytest.raises(TrainingInterrupted):
        _train(digits, tmp_path / "r", callbacks=_StopAt(flag, 1, batches), stop=flag)
    saved = read_checkpoint(tmp_path / "r" / "last.safetensors")
    assert (saved.epoch, saved.progress) == (1, None)


def test_same_seed_gives_the_same_bits_and_another_seed_does_not(digits, tmp_path):
    _train(digits, tmp_path / "a")
    _train(digits, tmp_path / "b")
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    _train(digits, tmp_path / "c", "train.seed=4")
    a = read_checkpoint(tmp_path / "a" / "last.safetensors").weights
    c = read_checkpoint(tmp_path / "c" / "last.safetensors").weights
    assert not np.array_equal(a["layers.0.weight"], c["layers.0.weight"])


def test_training_learns_the_generated_digits(digits, tmp_path):
    summary = _train(digits, tmp_path / "r", "train.epochs=10", "train.batch_size=16",
                     "schedule={type: constant}")
    assert summary["test"]["accuracy"] > 0.7  # chance is 0.1


def test_run_folder_holds_config_metrics_checkpoints_and_summary(digits, tmp_path):
    run = tmp_path / "r"
    summary = _train(digits, run)
    assert sorted(p.name for p in run.iterdir()) == [
        "best.safetensors", "config.yaml", "last.safetensors", "metrics.csv", "metrics.jsonl",
        "summary.json"]
    saved = load_config(str(run / "config.yaml"))
    assert saved.resolved() == _cfg().resolved()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                             "seconds", "images_per_s"]
    with open(run / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["val_acc"]) for r in table] == [r["val_acc"] for r in rows]
    assert rows[1]["lr"] == pytest.approx(0.01 * 0.5)  # step schedule: halved in epoch 2
    assert json.loads((run / "summary.json").read_text()) == summary
    assert summary["best_epoch"] == best_epoch(rows)
    assert summary["test"]["images"] == 100 and summary["train_images"] == 320
    assert summary["test"]["checkpoint"] == "best.safetensors"
    assert summary["stopped"] == "completed"


def test_best_checkpoint_holds_the_best_validation_epoch(digits, tmp_path):
    run = tmp_path / "r"
    _train(digits, run, "train.epochs=3", "optimizer.lr=0.05")
    best = read_checkpoint(run / "best.safetensors")
    assert best.epoch == best_epoch(best.history + read_checkpoint(
        run / "last.safetensors").history[best.epoch:])


def test_best_epoch_takes_the_first_of_equal_accuracies():
    rows = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7},
            {"epoch": 3, "val_acc": 0.7}]
    assert best_epoch(rows) == 2
    assert best_epoch([{"epoch": 1, "val_acc": None}, {"epoch": 2, "val_acc": None}]) == 2


def test_target_accuracy_stops_training_early(digits, tmp_path):
    _train(digits, tmp_path / "free", "train.epochs=4")
    history = read_checkpoint(tmp_path / "free" / "last.safetensors").history
    target = history[2]["val_acc"]
    first = next(r["epoch"] for r in history if r["val_acc"] >= target)
    summary = _train(digits, tmp_path / "r", "train.epochs=4", f"train.target_accuracy={target}")
    assert summary["stopped"] == "target_accuracy" and summary["epochs"] == first


def test_patience_stops_after_epochs_without_improvement(digits, tmp_path):
    # lr so small that nothing changes: accuracy never beats epoch 1
    summary = _train(digits, tmp_path / "r", "train.epochs=6", "train.patience=2",
                     "optimizer.lr=1e-12", "schedule={type: constant}")
    assert summary["stopped"] == "patience" and summary["epochs"] == 3


def test_non_finite_loss_names_epoch_and_step_and_keeps_the_last_checkpoint(digits, tmp_path):
    run = tmp_path / "r"

    class Diverge(Callbacks):
        def on_start(self, info):
            self.net = info.net

        def on_epoch_start(self, epoch, epochs, batches, done):
            if epoch == 2:  # simulate divergence: a weight blows up
                self.net.layers[-1].params["weight"][0, 0] = np.inf
                self.good = (run / "last.safetensors").read_bytes()

    cb = Diverge()
    with pytest.raises(TrainingError) as info:
        _train(digits, run, callbacks=cb)
    steps = -(-_train_images(digits) // 32)
    msg = str(info.value)
    assert f"loss became nan in epoch 2 at step {steps + 1} (batch 1 of {steps})" in msg
    assert f"the last good checkpoint is {run / 'last.safetensors'} (epoch 1)" in msg
    assert (run / "last.safetensors").read_bytes() == cb.good


def test_split_is_fixed_disjoint_and_independent_of_the_seed():
    train, val = split_indices(1000, 0.1)
    assert len(val) == 100 and len(train) == 900
    assert not set(train) & set(val) and set(train) | set(val) == set(range(1000))
    assert np.array_equal(val, split_indices(1000, 0.1)[1])
    assert np.all(np.diff(train) > 0)
    assert len(split_indices(1000, 0.0)[1]) == 0


def test_limit_keeps_the_first_training_images_and_the_whole_validation_set():
    images, labels = make_digits(200, seed=5)
    data = make_dataset(images, labels, None, None, val_split=0.25, limit=30)
    train_idx, val_idx = split_indices(200, 0.25)
    assert np.array_equal(data.train.images, images[train_idx[:30]])
    assert len(data.val) == 50 and data.test is None


def test_resume_refuses_a_finished_run_and_fewer_epochs(digits, tmp_path):
    _train(digits, tmp_path / "r", "train.epochs=1")
    with pytest.raises(ConfigError, match="already finished its 1 epochs"):
        plan_resume(tmp_path / "r" / "last.safetensors")
    with pytest.raises(ConfigError, match="must be >= 1"):
        plan_resume(tmp_path / "r" / "last.safetensors", epochs=0)


def test_resuming_from_best_needs_a_new_folder(digits, tmp_path):
    run = tmp_path / "r"
    _train(digits, run, "train.epochs=1")
    (run / "best.safetensors").write_bytes((run / "last.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="would overwrite"):
        plan_resume(run / "best.safetensors", epochs=2)
    plan = plan_resume(run / "best.safetensors", epochs=2, out=tmp_path / "branch")
    assert plan.run_dir == tmp_path / "branch"
    with pytest.raises(ConfigError, match="not empty"):
        plan_resume(run / "best.safetensors", epochs=2, out=run)


def test_a_checkpoint_outside_a_run_folder_needs_a_new_folder(digits, tmp_path):
    _train(digits, tmp_path / "r", "train.epochs=1")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own notes")
    (mine / "model.safetensors").write_bytes((tmp_path / "r" / "last.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="would write a run's files .* into .*mine; pass --out"):
        plan_resume(mine / "model.safetensors", epochs=2)
    assert (mine / "config.yaml").read_text() == "my own notes"


def test_continuing_from_best_in_a_new_folder_matches_the_straight_run(digits, tmp_path):
    _train(digits, tmp_path / "full")
    _train(digits, tmp_path / "r", "train.epochs=1")
    plan = plan_training(resume=tmp_path / "r" / "best.safetensors", epochs=2,
                         out=tmp_path / "branch")
    summary = run_training(plan, digits)
    _assert_same_run(tmp_path / "full", tmp_path / "branch")
    assert summary["test"] is not None and (tmp_path / "branch" / "best.safetensors").exists()


def test_confusion_matrix_and_per_class_scores_by_hand():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 1])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    rows = per_class(cm)
    # class 1: precision 2/4, recall 2/3, f1 = 2 * 0.5 * 2/3 / (0.5 + 2/3) = 4/7
    assert rows[1]["precision"] == pytest.approx(0.5)
    assert rows[1]["recall"] == pytest.approx(2 / 3)
    assert rows[1]["f1"] == pytest.approx(4 / 7)
    assert rows[2] == {"class": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


@pytest.mark.skipif(not SHARED_MNIST.is_dir(),
                    reason=f"real MNIST not found at {SHARED_MNIST} (place the four .gz files "
                           "there to run this test)")
def test_real_mnist_2000_images_2_epochs_learns_well_above_chance(tmp_path):
    cfg = load_config("lenet", ["train.epochs=2", "train.limit=2000", "train.batch_size=32"])
    source = FetchingSource(data_dir=tmp_path / "data", mirrors=[str(SHARED_MNIST)])
    summary = run_training(TrainPlan(cfg, tmp_path / "run"), source)
    assert summary["train_images"] == 2000 and summary["test"]["images"] == 10000
    assert summary["test"]["accuracy"] > 0.75  # chance is 0.10
    saved = read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert saved.data["dataset"] == "mnist" and saved.data["folder"] is None
    assert saved.data["files"]["train-images-idx3-ubyte"].startswith("ba891046")
    assert (saved.mean, saved.std) == (0.1307, 0.3081) and saved.classes[9] == "9"


def test_early_stopping_without_validation_images_is_a_config_error(digits, tmp_path):
    data = make_dataset(digits.arrays.train_images, digits.arrays.train_labels, None, None, 1e-6)
    assert data.val is None  # the split rounds to no image at all
    with pytest.raises(ConfigError, match="train.target_accuracy needs validation images, but "
                       "train.val_split 1e-06 of 400 training images gives none"):
        _train(digits, tmp_path / "r", "train.val_split=1e-6", "train.target_accuracy=0.5")


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    from datetime import datetime

    monkeypatch.chdir(tmp_path)
    now = datetime(2026, 11, 25, 14, 22, 58)
    first, made, lock1 = reserve_run_dir(None, "mlp", now)
    second, _, lock2 = reserve_run_dir(None, "mlp", now)
    lock1.release()
    lock2.release()
    assert (first, made) == (Path("runs/mlp-20261125-142258"), True)
    assert second == Path("runs/mlp-20261125-142258-2") and second.is_dir()
    remove_if_empty(second)
    (first / "kept.txt").write_text("x")
    remove_if_empty(first)  # not empty: left alone
    assert not second.exists() and first.is_dir()
    out, made, lock = reserve_run_dir(tmp_path / "empty-but-mine", "mlp")
    lock.release()
    assert made and out.is_dir()
    out.joinpath("x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        reserve_run_dir(out, "mlp")


#: TINY with batch normalisation, stochastic pooling and augmentation: every random draw they
#: add (pooling samples, warps) comes from the run's generator, so resume stays exact
RICH = TINY.replace(
    "    - {type: conv, filters: 4, kernel: 5}\n    - {type: relu}\n    - {type: maxpool, size: 4}",
    "    - {type: conv, filters: 4, kernel: 5}\n    - {type: batchnorm}\n    - {type: relu}\n"
    "    - {type: stochpool, size: 4}",
) + "data: {augment: {translate: 2, rotate: 10, scale: [0.9, 1.1], elastic_alpha: 8}}\n"


@pytest.mark.parametrize("epoch, batch", [(1, 3), (2, 2)])
def test_resume_is_bit_identical_with_batchnorm_stochpool_and_augmentation(digits, tmp_path,
                                                                           epoch, batch):
    assert "stochpool" in RICH and "batchnorm" in RICH and "augment" in RICH
    _train(digits, tmp_path / "full", text=RICH)
    flag = StopFlag()
    with pytest.raises(TrainingInterrupted) as info:
        _train(digits, tmp_path / "cut", text=RICH, callbacks=_StopAt(flag, epoch, batch),
               stop=flag)
    _resume(digits, info.value.checkpoint)
    _assert_same_run(tmp_path / "full", tmp_path / "cut")
    saved = read_checkpoint(tmp_path / "full" / "last.safetensors")
    assert "layers.1.running_mean" in saved.weights  # batchnorm's buffers are saved
    assert not any("running" in k for k in saved.optimizer)  # and never optimised


def test_augmentation_changes_the_training_but_not_the_test(digits, tmp_path):
    plain = _train(digits, tmp_path / "plain")
    warped = _train(digits, tmp_path / "warped", "data.augment={rotate: 20}")
    a = read_checkpoint(tmp_path / "plain" / "last.safetensors").history[0]
    b = read_checkpoint(tmp_path / "warped" / "last.safetensors").history[0]
    assert a["train_loss"] != b["train_loss"]
    assert plain["test"]["images"] == warped["test"]["images"] == 100


def test_init_from_takes_matching_tensors_and_refuses_or_skips_the_rest(digits, tmp_path):
    _train(digits, tmp_path / "base", "train.epochs=1")
    base = read_checkpoint(tmp_path / "base" / "best.safetensors")
    # the same network: every tensor is taken, so epoch 1 starts from the base's weights
    plan = plan_training(str(_write_config(tmp_path, TINY)), ["train.epochs=1"],
                         out=tmp_path / "same", init_from=tmp_path / "base")
    state_before = {}

    class Capture(Callbacks):
        def on_start(self, info):
            state_before.update({k: v.copy() for k, v in info.net.state().items()})
            self.notes = info.notes

    cb = Capture()
    run_training(plan, digits, cb)
    for name, arr in base.weights.items():
        np.testing.assert_array_equal(state_before[name], arr)
    assert cb.notes == (f"--init-from {tmp_path / 'base' / 'best.safetensors'}: took 4 of 4 "
                        "tensors",)
    # a wider first layer: refused before anything is written, naming every misfit...
    wider = _write_config(tmp_path, TINY.replace("filters: 4", "filters: 6"), "wider.yaml")
    with pytest.raises(ConfigError, match=r"3 of 4 tensors do not match: layers.0.weight "
                                          r"\(shape \(6, 1, 5, 5\) here, \(4, 1, 5, 5\) in the "
                                          r"checkpoint\); layers.0.bias .*take the 1 that do"):
        plan_training(str(wider), out=tmp_path / "wide", init_from=tmp_path / "base")
    assert not (tmp_path / "wide").exists()
    # ...or, with --init-partial, the matching tensor (the last bias) is taken
    cb = Capture()
    run_training(plan_training(str(wider), ["train.epochs=1"], out=tmp_path / "wide",
                               init_from=tmp_path / "base", init_partial=True), digits, cb)
    np.testing.assert_array_equal(state_before["layers.5.bias"], base.weights["layers.5.bias"])
    assert "took 1 of 4 tensors; skipped layers.0.weight" in cb.notes[0]


def _write_config(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_sharded_run_gives_the_same_bits_on_one_or_two_workers_and_resumes_exactly(
        digits, tmp_path):
    """train.shards is part of the arithmetic; the workers that run the shards are not."""
    _train(digits, tmp_path / "one", "train.shards=2", text=RICH, threads=1)
    _train(digits, tmp_path / "two", "train.shards=2", text=RICH, threads=2)
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    flag = StopFlag()
    with pytest.raises(TrainingInterrupted) as info:
        _train(digits, tmp_path / "cut", "train.shards=2", text=RICH, threads=2,
               callbacks=_StopAt(flag, 1, 4), stop=flag)
    _resume(digits, info.value.checkpoint, threads=1)
    _assert_same_run(tmp_path / "one", tmp_path / "cut")
    # and the shard count does change the arithmetic (dropout and pooling draw per shard)
    _train(digits, tmp_path / "three", "train.shards=3", text=RICH, threads=2)
    a = read_checkpoint(tmp_path / "one" / "last.safetensors").weights["layers.0.weight"]
    c = read_checkpoint(tmp_path / "three" / "last.safetensors").weights["layers.0.weight"]
    assert not np.array_equal(a, c)
