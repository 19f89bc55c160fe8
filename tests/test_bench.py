"""bench.py and `cnncli bench`: they run on synthetic data and report the documented figures.

No timing assertions (machines are noisy): only that every figure is there, positive and
consistent with the others.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnncli.bench import format_result, machine_info, run_benchmark, synthetic_batch
from cnncli.cli import cli
from cnncli.config import load_config
from cnncli.errors import ConfigError

TINY = [
    {"type": "conv", "filters": 2, "kernel": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "flatten"},
    {"type": "dropout", "rate": 0.5},
    {"type": "dense", "units": 3},
]


def test_run_benchmark_reports_every_layer_and_consistent_throughputs() -> None:
    r = run_benchmark((1, 6, 6), TINY, "softmax_cross_entropy", {"type": "adam", "lr": 1e-3},
                      batch_size=4, steps=2, warmup=1, eval_batch_size=5)
    assert [row.layer for row in r.layers] == [
        "conv 2@3x3 s1 same", "relu", "maxpool 2 s2", "flatten", "dropout 0.5", "dense 3"]
    assert [row.index for row in r.layers] == [0, 1, 2, 3, 4, 5]
    for row in r.layers:  # every layer was timed in both directions
        assert 0 < row.forward_ms < 1e4 and 0 < row.backward_ms < 1e4
    assert r.train_step_ms > 0 and r.eval_ms > 0
    assert r.train_images_per_s == pytest.approx(4 / (r.train_step_ms / 1e3))
    assert r.eval_images_per_s == pytest.approx(5 / (r.eval_ms / 1e3))
    table = format_result(r, "tiny")
    assert "conv 2@3x3 s1 same" in table and "images/s (batch 4, 1 shard on 1 thread)" in table
    assert r.threads == 1 and r.shards == 1


def test_machine_info_names_the_cpu_and_the_blas_with_its_version() -> None:
    info = machine_info()
    assert info["cpu"] and info["cpus"] >= 1 and info["numpy"] == np.__version__
    assert any(lib in info["blas"] for lib in ("openblas", "mkl", "blis", "accelerate"))
    assert any(ch.isdigit() for ch in info["blas"])  # a version


def test_run_benchmark_with_two_shards_on_two_threads_says_so_in_heading_and_dict() -> None:
    r = run_benchmark((1, 6, 6), TINY, batch_size=6, steps=2, warmup=1, eval_batch_size=300,
                      threads=2, shards=3)
    assert (r.threads, r.shards) == (2, 3)
    table = format_result(r, "tiny")
    head = table.splitlines()[1]
    assert machine_info()["cpu"] in head and "2 threads" in head
    assert "3 shards on 2 threads" in table
    d = r.to_dict()
    assert d["threads"] == 2 and d["shards"] == 3 and d["machine"]["blas"]


def test_benchmark_without_an_optimizer_times_the_default_sgd_with_momentum() -> None:
    r = run_benchmark((1, 6, 6), TINY, batch_size=3, steps=1, warmup=0, eval_batch_size=2)
    assert r.optimizer == "sgd" and 0 < r.optimizer_ms < 1e4
    adam = run_benchmark((1, 6, 6), TINY, optimizer={"type": "adam"}, batch_size=3, steps=1,
                         warmup=0, eval_batch_size=2)
    assert adam.optimizer == "adam"


def test_synthetic_batch_is_batch_last_float32_with_labels_in_range() -> None:
    x, y = synthetic_batch((1, 6, 6), 3, 7, np.random.default_rng(0))
    assert x.shape == (1, 6, 6, 7) and x.dtype == np.float32
    assert y.shape == (7,) and set(y.tolist()) <= {0, 1, 2}


def test_bad_batch_size_is_a_config_error_quoting_it() -> None:
    with pytest.raises(ConfigError, match="batch_size must be at least 1, received 0"):
        run_benchmark((1, 6, 6), TINY, batch_size=0)


def test_bench_command_json_has_the_documented_keys() -> None:
    result = CliRunner().invoke(cli, ["bench", "--config", "lenet", "--batch-size", "2",
                                      "--steps", "1", "--eval-batch-size", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("train_images_per_s", "eval_images_per_s", "layers", "train_step_ms",
                "batch_size", "eval_batch_size", "loss_ms", "optimizer_ms"):
        assert key in data
    assert data["batch_size"] == 2 and data["eval_batch_size"] == 3
    assert len(data["layers"]) == len(load_config("lenet").run.model.layers)
    assert set(data["layers"][0]) == {"index", "layer", "forward_ms", "backward_ms"}
    assert data["layers"][0]["layer"] == "conv 6@5x5 s1 same"
    assert data["train_images_per_s"] > 0 and data["eval_images_per_s"] > 0
    assert data["machine"]["cpu"] and data["machine"]["blas"]
    assert data["threads"] >= 1 and data["shards"] == data["threads"]


def test_bench_command_takes_threads_and_shards() -> None:
    result = CliRunner().invoke(cli, ["bench", "--config", "lenet", "--batch-size", "4",
                                      "--steps", "1", "--eval-batch-size", "2", "--threads", "1",
                                      "--shards", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["threads"], data["shards"]) == (1, 2)


def test_bench_command_prints_a_table() -> None:
    result = CliRunner().invoke(cli, ["bench", "--config", "lenet", "--batch-size", "2",
                                      "--steps", "1", "--eval-batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "maxpool 2 s2" in result.output and "train step:" in result.output


def test_bench_command_unknown_preset_is_a_clean_error() -> None:
    result = CliRunner().invoke(cli, ["bench", "--config", "no-such-preset"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "Traceback" not in result.output


def test_a_batch_too_big_for_memory_is_one_error_line() -> None:
    result = CliRunner().invoke(cli, ["bench", "--config", "mlp", "--steps", "1",
                                      "--batch-size", str(10**12)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: out of memory: Unable to allocate")
    assert len(result.output.strip().splitlines()) == 1
