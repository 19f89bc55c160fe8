"""Checkpoints: exact round-trip, atomic writes, and one clear error for every bad file.

checkpoint.py converts bytes <-> Checkpoint; whether the tensors fit a model is the model's
check (Network.load_parameters, via training.evaluate.model_of), whether the optimizer state
fits is the optimizer's: `_load` runs all three as `cnncli eval` does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file, save_file

from cnncli.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from cnncli.config import LoadedConfig, validate_config
from cnncli.data import MNIST
from cnncli.errors import CheckpointError
from cnncli.files import write_atomic
from cnncli.network import build_model
from cnncli.optim import build_optimizer
from cnncli.training.evaluate import config_of, model_of

SMALL = """\
model:
  layers:
    - {type: conv, filters: 2, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 4}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 8}
"""


MNIST_IDENTITY = {"dataset": "mnist", "folder": None,
                  "files": {f.name: f.sha256 for f in MNIST.files}}

#: one metrics row, as cnncli.train writes it after each epoch
ROW = {"epoch": 1, "lr": 0.01, "train_loss": 1.5, "train_acc": 0.4, "val_loss": 1.2,
       "val_acc": 0.5, "seconds": 2.0, "images_per_s": 900.0}


def _make(text: str = SMALL, seed: int = 0) -> Checkpoint:
    cfg = validate_config(yaml.safe_load(text), source="x.yaml")
    rng = np.random.default_rng(seed)
    net = build_model(cfg.run.model.input_shape, cfg.run.model.layers, rng=rng)
    opt = build_optimizer(cfg.run.optimizer, net.named_parameters())
    grads = {k: np.ones_like(v) for k, v in net.named_parameters().items()}
    opt.step(grads)
    return Checkpoint(config=cfg.resolved(), weights=net.named_parameters(),
                      optimizer=opt.state_dict(), epoch=1, step=7,
                      rng_state=rng.bit_generator.state,
                      history=[ROW], data=MNIST_IDENTITY)


def load_checkpoint(path: Path | str) -> tuple[Checkpoint, LoadedConfig]:
    """Read, validate the config, load the weights into its model and the optimizer state into
    its optimizer: every check a checkpoint meets before it is used."""
    ckpt = read_checkpoint(path)
    cfg = config_of(ckpt)
    net = model_of(ckpt, cfg)
    opt = build_optimizer(cfg.run.optimizer, net.named_parameters())
    try:
        opt.load_state_dict(ckpt.optimizer)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return ckpt, cfg


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Checkpoint]:
    ckpt = _make()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, ckpt)
    return path, ckpt


def _load_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_round_trip_is_exact(saved):
    path, ckpt = saved
    got, cfg = load_checkpoint(path)
    assert got.config == ckpt.config and cfg.resolved() == ckpt.config
    assert (got.epoch, got.step, got.history, got.progress) == (1, 7, ckpt.history, None)
    assert set(got.weights) == set(ckpt.weights)
    for k, v in ckpt.weights.items():
        assert got.weights[k].dtype == np.float32 and np.array_equal(got.weights[k], v)
    for k, v in ckpt.optimizer.items():
        assert np.array_equal(got.optimizer[k], v)
    assert int(got.optimizer["step"]) == 1


def test_generator_state_round_trips_exactly(saved):
    path, ckpt = saved
    got, _ = load_checkpoint(path)
    a = np.random.default_rng()
    a.bit_generator.state = ckpt.rng_state
    b = np.random.default_rng()
    b.bit_generator.state = got.rng_state
    assert np.array_equal(a.integers(0, 2**62, 100), b.integers(0, 2**62, 100))


def test_mid_epoch_progress_and_permutation_round_trip(tmp_path):
    ckpt = _make()
    ckpt.progress = {"batch": 3, "loss_sum": 0.1 + 0.2, "correct": 5, "seen": 24, "seconds": 1.5}
    ckpt.permutation = np.array([3, 1, 2, 0], dtype=np.int64)
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    got = read_checkpoint(tmp_path / "c.safetensors")
    assert got.progress == ckpt.progress  # floats survive JSON bit for bit
    assert np.array_equal(got.permutation, ckpt.permutation)
    assert "train.permutation" not in got.weights


def test_file_is_plain_safetensors_with_dotted_names(saved):
    path, _ = saved
    tensors = load_file(path)
    assert "layers.0.weight" in tensors and "layers.4.bias" in tensors
    assert "optimizer.layers.0.weight.m" in tensors and "optimizer.step" in tensors


def test_write_leaves_no_temporary_files(saved):
    path, _ = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.safetensors"]


def test_failed_write_keeps_the_old_file_intact(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(path, _make(seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.safetensors"]


def test_write_atomic_replaces_content(tmp_path):
    path = tmp_path / "f.txt"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in _load_error(tmp_path / "nope.safetensors")


def test_folder_is_not_a_checkpoint(tmp_path):
    assert "is a folder" in _load_error(tmp_path)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this system")
def test_device_is_not_read_as_a_checkpoint():
    assert "/dev/zero: is not a regular file" in _load_error(Path("/dev/zero"))


def test_empty_path_is_not_taken_for_the_current_folder():
    with pytest.raises(CheckpointError, match="no checkpoint given: the path is empty"):
        read_checkpoint("")


@pytest.mark.parametrize("cut", [0, 5, 100, -1, -50])
def test_truncated_file(saved, cut):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:cut])  # the first `cut` bytes, or all but the last -cut
    msg = _load_error(path)
    assert any(s in msg for s in ("truncated", "only", "header would be", "digest")), msg


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("some notes of mine, not a checkpoint\n")
    assert "not a safetensors checkpoint" in _load_error(path)
    assert "(it looks like text)" in _load_error(path)
    path.write_text("model:\n  layers: []\n")
    assert "this is a config, not a checkpoint" in _load_error(path)


def test_flipped_byte_in_the_tensors_is_detected(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "do not match their recorded digest; the file is corrupted" in _load_error(path)


def test_every_flipped_header_byte_is_one_checkpoint_error(saved):
    """The header holds the tensor table and the metadata (config, history, generator state):
    a flip anywhere in it must be refused, never load with a changed config or crash."""
    path, _ = saved
    good = path.read_bytes()
    header_end = 8 + int.from_bytes(good[:8], "little")
    for i in range(8, header_end):
        data = bytearray(good)
        data[i] ^= 0x04  # e.g. momentum 0.9 -> 0.=, '1' -> '5', 'a' -> 'e'
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError):
            read_checkpoint(path)


def test_edited_config_with_a_stale_digest_is_refused(saved):
    path, _ = saved
    data = path.read_bytes()
    edited = data.replace(b'\\"lr\\": 0.01', b'\\"lr\\": 0.09')  # JSON inside JSON
    assert edited != data
    path.write_bytes(edited)
    assert "tensors or metadata do not match their recorded digest" in _load_error(path)


PROGRESS = {"batch": 3, "loss_sum": 1.0, "correct": 2, "seen": 8, "seconds": 0.1}


@pytest.mark.parametrize(("change", "problem"), [
    ({"history": []}, "history must hold one row per completed epoch (1)"),
    ({"history": [{**ROW, "epoch": 99}]},
     "history row 1 must be a mapping of numbers with epoch 1"),
    ({"history": [{**ROW, "train_loss": "low"}]}, "history row 1 must be a mapping of numbers"),
    ({"epoch": -1, "history": []}, "epoch -1 and step 7 out of range"),
    ({"step": 2**63 - 1}, "epoch 1 and step 9223372036854775807 out of range"),
    ({"rng_state": {"bit_generator": "PCG64", "state": {"state": -5, "inc": 3},
                    "has_uint32": 0, "uinteger": 0}}, "random generator state"),
    ({"progress": {"batch": 3}}, "progress must give non-negative integers batch"),
    ({"progress": {**PROGRESS, "batch": 2.0}, "permutation": np.arange(3)},
     "progress must give non-negative integers batch"),
    ({"progress": {**PROGRESS, "seen": 0}, "permutation": np.arange(3)},
     "progress counters disagree"),
    ({"progress": PROGRESS, "permutation": np.array([0, 0, 1])},
     "a mid-epoch checkpoint needs its shuffle, a permutation of 0..n-1"),
    ({"permutation": np.arange(3)}, "a shuffle without an unfinished epoch"),
])
def test_well_formed_but_impossible_metadata_is_refused(tmp_path, change, problem):
    ckpt = _make()
    for key, value in change.items():
        setattr(ckpt, key, value)
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, ckpt)  # a consistent digest: only the values are wrong
    assert f"damaged metadata ({problem}" in _load_error(path)


def resign(path: Path, tensors: dict, meta: dict) -> None:
    """Rewrite a checkpoint with changed tensors and metadata and a fresh, valid digest: what
    anyone can do, since the digest has no key."""
    from safetensors.numpy import save

    from cnncli.checkpoint import DIGEST, _digest

    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    old_meta = json.loads(data[8:8 + n])["__metadata__"]
    new_tensors = {**load_file(path), **tensors}
    new_meta = {**old_meta, **meta}
    new_meta[DIGEST] = _digest(new_tensors, new_meta)
    path.write_bytes(save(new_tensors, metadata=new_meta))


def test_a_resigned_float_shuffle_is_refused(tmp_path):
    ckpt = _make()
    ckpt.progress, ckpt.permutation = PROGRESS, np.arange(3)
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, ckpt)
    resign(path, {"train.permutation": np.arange(3, dtype=np.float64)}, {})
    assert "needs its shuffle, a permutation of 0..n-1" in _load_error(path)


def test_metadata_nested_too_deeply_is_one_error(tmp_path):
    ckpt = _make()
    deep: list = []
    for _ in range(40):
        deep = [deep]
    ckpt.history = [{**ROW, "deep": deep}]
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    assert "damaged metadata (history: nested too deeply)" in _load_error(
        tmp_path / "c.safetensors")


def test_an_older_format_is_refused_by_name(tmp_path):
    path = tmp_path / "old.safetensors"
    save_file({"layers.0.weight": np.zeros(2, np.float32)}, path,
              metadata={"format": "cnncli.checkpoint", "format_version": "2"})
    msg = _load_error(path)
    assert "format version '2' is from an older cnncli; this cnncli reads format '3'" in msg


def test_a_huge_sparse_file_is_refused_from_its_header_without_reading_it(tmp_path):
    import resource

    path = tmp_path / "big.safetensors"
    with path.open("wb") as fh:
        fh.write((3 << 30).to_bytes(8, "little"))  # a header "3 GB long"
        fh.truncate(3 << 30)  # sparse: no disk used
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = _load_error(path)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert "header would be" in msg and grown_kb < 100_000


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"conv1.weight": np.zeros((6, 1, 5, 5), np.float32)}, path)
    assert "not a cnncli checkpoint" in _load_error(path)


def test_weights_from_another_architecture_are_refused(tmp_path):
    wider = _make(SMALL.replace("filters: 2", "filters: 3"))
    narrow = _make()
    wider.config = narrow.config  # the tensors of one model under the config of another
    path = tmp_path / "mixed.safetensors"
    save_checkpoint(path, wider)
    msg = _load_error(path)
    assert "layers.0.weight has shape (3, 1, 5, 5)" in msg and "another architecture" in msg


def test_missing_weight_is_refused(tmp_path):
    ckpt = _make()
    del ckpt.weights["layers.4.bias"]
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    assert "missing 'layers.4.bias'" in _load_error(tmp_path / "c.safetensors")


def test_optimizer_state_of_another_optimizer_is_refused(tmp_path):
    ckpt = _make()
    ckpt.optimizer = {}
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    assert "optimizer state does not match Adam" in _load_error(tmp_path / "c.safetensors")


def test_non_finite_weights_are_refused(tmp_path):
    ckpt = _make()
    ckpt.weights["layers.0.bias"][0] = np.nan
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    assert "layers.0.bias contains NaN" in _load_error(tmp_path / "c.safetensors")


def test_invalid_saved_config_is_a_checkpoint_error(tmp_path):
    ckpt = _make()
    ckpt.config = {**ckpt.config, "optimizer": {"type": "adam", "lr": -1.0}}
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    msg = _load_error(tmp_path / "c.safetensors")
    assert "(saved config): optimizer.lr: must be > 0" in msg


def test_metadata_holds_json_config_epoch_step_rng_and_history(saved):
    path, ckpt = saved
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + n])["__metadata__"]
    assert meta["format"] == "cnncli.checkpoint" and meta["format_version"] == "3"
    assert json.loads(meta["data"]) == MNIST_IDENTITY and meta["cnncli"]
    assert json.loads(meta["classes"]) == [str(k) for k in range(10)]
    assert json.loads(meta["normalise"]) == [0.1307, 0.3081]
    assert json.loads(meta["config"]) == ckpt.config
    assert (meta["epoch"], meta["step"]) == ("1", "7")
    assert json.loads(meta["rng"])["bit_generator"] == "PCG64"
    assert json.loads(meta["history"]) == ckpt.history
