"""cnncli.sweep.trial: the default trial function is an ordinary cnncli training that reports
every epoch, continues an interrupted run folder exactly, and the BLAS thread probe tells the
truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sweep_helpers import tiny_config

from cnncli.sweep.trial import CnncliTrial


class Killed(Exception):
    """Stands in for Ray ending a trial inside its report call."""


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_trial_is_an_ordinary_run_folder_and_reports_each_epoch(tmp_path):
    config = tiny_config(tmp_path, epochs=2)
    rows = []
    summary = CnncliTrial()(str(config), [("optimizer.lr", 0.005)], 3, tmp_path / "run",
                            rows.append)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.jsonl", "metrics.csv",
                                               "last.safetensors", "best.safetensors",
                                               "summary.json"}
    assert rows == read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert summary == json.loads((run / "summary.json").read_text())
    assert (summary["epochs"], summary["train_images"]) == (2, 320)
    saved = (run / "config.yaml").read_text()
    assert "lr: 0.005" in saved and "seed: 3" in saved


def test_an_interrupted_trial_continues_from_its_checkpoint_as_if_never_stopped(tmp_path):
    config = tiny_config(tmp_path, epochs=3)
    trial = CnncliTrial()

    def dies_after_epoch_1(row):
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        trial(str(config), [], 0, tmp_path / "cut", dies_after_epoch_1)
    first = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert [r["epoch"] for r in first] == [1]
    rows = []
    summary = trial(str(config), [], 0, tmp_path / "cut", rows.append)
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # epoch 1 again, for the scheduler
    assert rows[0] == first[0]  # the saved epoch, not a new one (its seconds would differ)
    whole = []
    trial(str(config), [], 0, tmp_path / "whole", whole.append)
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
                     for r in whole]
    assert summary["steps"] == 3 * 10


def test_a_failing_trial_raises_its_one_line_error(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(Exception, match="loss became nan"):
        CnncliTrial()(str(config), [("optimizer.type", "sgd"), ("optimizer.lr", 1e30)], 0,
                      tmp_path / "nan", lambda row: None)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_blas_threads_reads_what_openblas_was_told(threads):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads}
    out = subprocess.run([sys.executable, "-c",
                          "from cnncli.sweep.trial import blas_threads; print(blas_threads())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    if out.strip() == "None":
        pytest.skip("numpy here does not use an OpenBLAS this probe can read")
    assert out.strip() == threads

