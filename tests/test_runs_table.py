"""runs_table.py: one row per run folder from its files, finished or not, damaged or not,
never a traceback; sortable by any column with missing values last."""

from __future__ import annotations

import json
import os
import struct
from datetime import datetime
from pathlib import Path

import pytest

from cnncli.errors import ConfigError, DataError
from cnncli.runs_table import COLUMNS, format_runs, list_runs, read_run, sort_runs


def metrics_rows(n: int, val: float = 0.98) -> str:
    return "".join(json.dumps({"epoch": e, "lr": 0.001, "train_loss": 0.1, "train_acc": 0.97,
                               "val_loss": 0.05, "val_acc": val + e / 1000, "seconds": 30.0,
                               "images_per_s": 2000.0}) + "\n" for e in range(1, n + 1))


def safetensors_with(meta: dict[str, str]) -> bytes:
    header = json.dumps({"__metadata__": meta}).encode()
    return struct.pack("<Q", len(header)) + header


def make_runs(root: Path) -> None:
    done = root / "lenet-20261128-101500"
    done.mkdir(parents=True)
    (done / "config.yaml").write_text("train:\n  epochs: 3\n")
    (done / "metrics.jsonl").write_text(metrics_rows(3))
    (done / "summary.json").write_text(json.dumps({
        "config": "lenet", "epochs": 3, "stopped": "completed", "best_epoch": 3,
        "best_val_acc": 0.991, "test": {"accuracy": 0.9918, "loss": 0.03},
        "train_seconds": 90.0, "wall_seconds": 93.5}))

    stopped = root / "mlp-20261128-111500"             # Ctrl-C in epoch 2 of 10
    stopped.mkdir()
    (stopped / "config.yaml").write_text("train:\n  epochs: 10\n")
    (stopped / "metrics.jsonl").write_text(metrics_rows(1, val=0.95))
    (stopped / "last.safetensors").write_bytes(safetensors_with({"progress": "{}"}))

    running = root / "lenet-20261128-121500-2"          # second run in the same second
    running.mkdir()
    (running / "config.yaml").write_text("train:\n  epochs: 15\n")
    (running / "metrics.jsonl").write_text(metrics_rows(2) + '{"epoch": 3, "lr": 0.0')
    (running / "last.safetensors").write_bytes(safetensors_with({"epoch": "2"}))

    damaged = root / "my-experiment"                     # --out my-experiment
    damaged.mkdir()
    (damaged / "config.yaml").write_text("train: [unclosed\n")
    (damaged / "summary.json").write_text('{"config": "lenet", "epo')
    stamp = datetime(2026, 11, 27, 9, 30).timestamp()
    os.utime(damaged / "config.yaml", (stamp, stamp))

    odd = root / "odd-types"
    odd.mkdir()
    (odd / "summary.json").write_text(json.dumps({"config": ["x"], "epochs": "many",
                                                  "best_val_acc": "high", "test": "none",
                                                  "wall_seconds": True}))
    (odd / "metrics.jsonl").write_text("[1, 2]\n")

    (root / "notes").mkdir()                            # not a run: none of its files
    (root / "notes" / "todo.txt").write_text("try dropout 0.3")
    (root / "readme.txt").write_text("a file, not a folder")
    (root / ".hidden-run").mkdir()
    (root / ".hidden-run" / "summary.json").write_text("{}")


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def test_each_run_folder_becomes_a_row_whatever_state_it_is_in(tmp_path: Path) -> None:
    make_runs(tmp_path)
    rows = list_runs(tmp_path)
    assert [r["name"] for r in rows] == ["lenet-20261128-101500", "lenet-20261128-121500-2",
                                         "mlp-20261128-111500", "my-experiment", "odd-types"]
    assert all(set(r) == set(COLUMNS) for r in rows)
    runs = by_name(rows)

    done = runs["lenet-20261128-101500"]
    assert (done["status"], done["config"], done["epochs"], done["planned_epochs"]) == (
        "finished", "lenet", 3, None)  # read from summary.json alone
    assert (done["best_val_acc"], done["test_acc"], done["seconds"]) == (0.991, 0.9918, 93.5)
    assert done["date"] == "2026-11-28 10:15" and done["problem"] is None

    stopped = runs["mlp-20261128-111500"]
    assert (stopped["status"], stopped["config"], stopped["epochs"]) == ("interrupted", "mlp", 1)
    assert stopped["planned_epochs"] == 10 and stopped["best_val_acc"] == 0.951
    assert stopped["test_acc"] is None and stopped["seconds"] == 30.0

    running = runs["lenet-20261128-121500-2"]
    assert (running["status"], running["config"], running["epochs"]) == ("unfinished", "lenet", 2)
    assert running["problem"] == "metrics.jsonl: 1 unreadable line(s) skipped"
    assert running["date"] == "2026-11-28 12:15"

    damaged = runs["my-experiment"]
    assert damaged["status"] == "unfinished" and damaged["config"] is None
    assert "summary.json: not valid JSON (cut short?)" in damaged["problem"]
    assert "config.yaml: not valid YAML" in damaged["problem"]
    assert damaged["date"] == "2026-11-27 09:30"        # config.yaml's time: no name stamp

    odd = runs["odd-types"]
    assert (odd["status"], odd["epochs"], odd["best_val_acc"], odd["test_acc"],
            odd["seconds"]) == ("finished", None, None, None, None)
    assert odd["problem"] is None  # its summary is read, its metrics.jsonl not needed


def test_a_run_read_alone_matches_its_row(tmp_path: Path) -> None:
    make_runs(tmp_path)
    assert read_run(tmp_path / "mlp-20261128-111500") == by_name(list_runs(tmp_path))[
        "mlp-20261128-111500"]


def test_sorting_by_any_column_puts_missing_values_last(tmp_path: Path) -> None:
    make_runs(tmp_path)
    rows = list_runs(tmp_path)
    best = sort_runs(rows, "test_acc", descending=True)
    assert best[0]["name"] == "lenet-20261128-101500"
    assert all(r["test_acc"] is None for r in best[1:])
    val = [r["best_val_acc"] for r in sort_runs(rows, "best_val_acc")]
    assert val == [0.951, 0.982, 0.991, None, None]
    val_desc = [r["best_val_acc"] for r in sort_runs(rows, "best_val_acc", descending=True)]
    assert val_desc == [0.991, 0.982, 0.951, None, None]
    assert [r["name"] for r in sort_runs(rows, "date")][0] == "my-experiment"
    for column in COLUMNS:
        assert len(sort_runs(rows, column)) == len(rows)
    with pytest.raises(ConfigError, match="cannot sort by 'accuracy' \\(columns: name, config"):
        sort_runs(rows, "accuracy")


def test_table_text_shows_progress_and_problems(tmp_path: Path) -> None:
    make_runs(tmp_path)
    text = format_runs(sort_runs(list_runs(tmp_path), "name"))
    lines = text.splitlines()
    assert lines[0].split() == ["run", "config", "status", "epochs", "best", "val", "test",
                                "time", "date"]
    done = next(line for line in lines if line.startswith("lenet-20261128-101500"))
    assert done.split() == ["lenet-20261128-101500", "lenet", "finished", "3", "99.10%",
                            "99.18%", "1:34", "2026-11-28", "10:15"]
    stopped = next(line for line in lines if line.startswith("mlp-"))
    assert " 1/10 " in stopped and "interrupted" in stopped
    assert any(line.startswith("(!) my-experiment: summary.json: not valid JSON")
               for line in lines)
    assert format_runs([]).splitlines()[0].startswith("run")


def test_a_folder_that_is_not_there_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing-here: no such folder"):
        list_runs(tmp_path / "nothing-here")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="file: not a folder"):
        list_runs(tmp_path / "file")
    assert list_runs(tmp_path) == []


def test_non_finite_numbers_and_deep_nesting_are_no_values_not_tracebacks(tmp_path: Path
                                                                          ) -> None:
    # Python's json writes and reads NaN and Infinity; 1e400 reads as infinity
    odd = tmp_path / "odd-numbers"
    odd.mkdir()
    (odd / "summary.json").write_text('{"config": "lenet", "epochs": 1, "best_val_acc": NaN, '
                                      '"test": {"accuracy": Infinity}, "wall_seconds": 1e400}')
    part = tmp_path / "partial-run"
    part.mkdir()
    (part / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": NaN, "seconds": -Infinity}\n'
                                        '{"epoch": 2, "val_acc": 0.5, "seconds": ' + "9" * 400
                                        + "}\n")
    deep = tmp_path / "deep-run"
    deep.mkdir()
    (deep / "summary.json").write_text("[" * 100_000)
    (deep / "metrics.jsonl").write_text("[" * 100_000 + "\n")
    (deep / "last.safetensors").write_bytes(struct.pack("<Q", 100_000) + b"[" * 100_000)
    runs = by_name(list_runs(tmp_path))
    assert (runs["odd-numbers"]["best_val_acc"], runs["odd-numbers"]["test_acc"],
            runs["odd-numbers"]["seconds"]) == (None, None, None)
    assert (runs["partial-run"]["best_val_acc"], runs["partial-run"]["seconds"]) == (0.5, None)
    assert runs["deep-run"]["status"] == "unfinished"
    assert "summary.json: not valid JSON" in runs["deep-run"]["problem"]
    assert "metrics.jsonl: 1 unreadable line(s) skipped" in runs["deep-run"]["problem"]
    text = format_runs(sort_runs(list(runs.values()), "seconds"))
    assert "nan" not in text.lower() and "inf" not in text.lower()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_under_a_run_file_name_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    run = tmp_path / "piped"
    run.mkdir()
    for name in ("summary.json", "metrics.jsonl", "config.yaml", "last.safetensors"):
        os.mkfifo(run / name)  # opening one for reading would wait for a writer forever
    (row,) = list_runs(tmp_path)
    assert row["status"] == "unfinished"
    assert row["problem"] == ("summary.json: not a regular file; metrics.jsonl: not a regular "
                              "file; config.yaml: not a regular file")
