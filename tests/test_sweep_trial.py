"""cnncli.sweep.trial: the default trial function is an ordinary cnncli training that reports
every epoch, continues an interrupted run folder exactly, and the BLAS thread probe tells the
truth."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
from sweep_helpers import tiny_config

import cnncli
from cnncli.errors import ConfigError
from cnncli.sweep.trial import CnncliTrial
from cnncli.training.folder import LOCK, RUN_FILES


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
    files = {p.name for p in run.iterdir()} - {LOCK}
    assert {"config.yaml", "metrics.jsonl", "metrics.csv", "last.safetensors",
            "best.safetensors", "summary.json", "report.html"} <= files <= set(RUN_FILES)
    assert rows == read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert summary.pop("report") == str(run / "report.html")  # as `cnncli train` writes it
    assert summary.pop("cnncli") == cnncli.__version__
    assert summary.pop("data").startswith(f"idx folder {tmp_path / 'digits'} (train images "
                                          "sha256 ")
    assert summary == json.loads((run / "summary.json").read_text())
    assert (summary["epochs"], summary["train_images"]) == (2, 320)
    saved = (run / "config.yaml").read_text()
    assert "lr: 0.005" in saved and "seed: 3" in saved


def test_an_interrupted_trial_continues_from_its_checkpoint_as_if_never_stopped(tmp_path):
    config = tiny_config(tmp_path, epochs=3)
    trial = CnncliTrial(report=False)

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


def test_a_trial_stopped_before_its_first_checkpoint_starts_again_from_scratch(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    trial = CnncliTrial(report=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("what the killed start wrote\n")
    (run / "metrics.jsonl").write_text("")
    rows = []
    trial(str(config), [], 0, run, rows.append)
    assert [r["epoch"] for r in rows] == [1]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="folder exists and is not empty"):
        trial(str(config), [], 0, tmp_path / "mine", rows.append)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_trial_that_finished_unrecorded_is_not_trained_again(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    trial = CnncliTrial(report=False)
    first = []
    summary = trial(str(config), [], 0, tmp_path / "run", first.append)
    written = (tmp_path / "run" / "last.safetensors").stat().st_mtime_ns
    again = []
    assert trial(str(config), [], 0, tmp_path / "run", again.append) == summary
    assert again == first
    assert (tmp_path / "run" / "last.safetensors").stat().st_mtime_ns == written


def test_the_driver_s_terminal_hooks_are_not_shipped_to_the_workers():
    trial = CnncliTrial(data_dir="/d", mirrors=("/m",), progress=print, notify=print)
    shipped = pickle.loads(pickle.dumps(trial))
    assert (shipped.data_dir, shipped.mirrors, shipped.progress, shipped.notify) == (
        "/d", ("/m",), None, None)


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

