"""cnncli.sweep.results: means and standard deviations over seeds (checked by hand), the order
of the grouped table, the records files, and best.yaml as a config cnncli can load."""

from __future__ import annotations

import csv
import json

import pytest

from cnncli.config import load_config
from cnncli.sweep.results import (
    TrialRecord,
    append_record,
    best_yaml_text,
    format_table,
    group_by_config,
    mean_std,
    read_records,
    write_records,
)
from cnncli.sweep.trial import resolve_config


def rec(cid: str, lr: float, seed: int, status: str = "ok", val: float | None = None,
        test: float | None = None, **kw) -> TrialRecord:
    return TrialRecord(f"{cid}-s{seed}", cid, {"optimizer.lr": lr}, seed, status, val, test,
                       **kw)


RECORDS = [
    rec("aaaaaaaa", 0.1, 0, val=0.90, test=0.89),
    rec("bbbbbbbb", 0.2, 0, val=0.95, test=0.94),
    rec("cccccccc", 0.3, 0, "failed", error="loss became nan"),
    rec("dddddddd", 0.4, 0, "unfinished"),
    rec("aaaaaaaa", 0.1, 1, val=0.92, test=0.91),
    rec("bbbbbbbb", 0.2, 1, "failed", error="boom"),
    rec("aaaaaaaa", 0.1, 2, val=0.94, test=0.93),
    rec("bbbbbbbb", 0.2, 2, "stopped", val=0.50),
]


def test_mean_and_sample_standard_deviation_by_hand():
    mean, std = mean_std([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92)
    assert std == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / (3 - 1))
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([]) == (None, None)


def test_configs_are_grouped_over_their_finished_seeds_best_mean_first():
    rows = group_by_config(RECORDS)
    assert [r.config_id for r in rows] == ["bbbbbbbb", "aaaaaaaa", "cccccccc", "dddddddd"]
    b, a, c, d = rows
    # b: only seed 0 finished; its stopped seed's 0.50 does not pull the mean down
    assert (b.val_mean, b.val_std, b.test_mean, b.n, b.stopped, b.failed) == (
        0.95, None, 0.94, 1, 1, 1)
    assert (a.seeds, a.stopped, a.failed, a.best_trial) == ([0, 1, 2], 0, 0, "aaaaaaaa-s2")
    assert a.val_mean == pytest.approx(0.92) and a.val_std == pytest.approx(0.02)
    assert a.test_mean == pytest.approx(0.91) and a.test_std == pytest.approx(0.02)
    assert (c.val_mean, c.n, c.failed, c.best_trial) == (None, 0, 1, None)
    assert (d.unfinished, d.n) == (1, 0)


def test_the_table_shows_percentages_with_their_spread_one_line_per_config():
    lines = format_table(group_by_config(RECORDS)).splitlines()
    assert lines[0].split() == ["#", "config", "optimizer.lr", "val", "acc", "%", "test", "acc",
                                "%", "seeds", "stopped", "failed", "unfinished"]
    assert lines[1].split() == ["1", "bbbbbbbb", "0.2", "95.00", "94.00", "1", "1", "1", "0"]
    assert lines[2].split() == ["2", "aaaaaaaa", "0.1", "92.00", "±", "2.00", "91.00", "±",
                                "2.00", "3", "0", "0", "0"]
    assert lines[3].split() == ["3", "cccccccc", "0.3", "-", "-", "0", "0", "1", "0"]
    assert len(lines) == 5
    assert lines[2].index("92.00") == lines[1].index("95.00")  # columns line up


def test_records_files_hold_every_field_and_one_csv_column_per_override_key(tmp_path):
    records = [rec("aaaaaaaa", 0.1, 0, val=0.9, test=0.8, epochs=3, seconds=1.5,
                   run_dir="/x/a", blas_threads=1),
               TrialRecord("eeeeeeee", "eeeeeeee", {"optimizer.betas": [0.9, 0.99]}, None,
                           "failed", error="bad, \"quoted\" reason")]
    write_records(tmp_path, records)
    assert [TrialRecord(**json.loads(line)) for line in
            (tmp_path / "sweep.jsonl").read_text().splitlines()] == records
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert list(rows[0]) == ["trial_id", "config_id", "optimizer.lr", "optimizer.betas", "seed",
                             "status", "best_val_acc", "test_acc", "epochs", "seconds", "error",
                             "run_dir", "blas_threads", "data", "cnncli"]
    assert (rows[0]["optimizer.lr"], rows[0]["optimizer.betas"], rows[0]["test_acc"]) == (
        "0.1", "", "0.8")
    assert (rows[1]["optimizer.betas"], rows[1]["seed"], rows[1]["error"]) == (
        "[0.9, 0.99]", "", 'bad, "quoted" reason')


def test_reading_records_keeps_the_last_line_per_trial_and_skips_a_torn_line(tmp_path):
    append_record(tmp_path, rec("aaaaaaaa", 0.1, 0, "failed", error="worker died"))
    append_record(tmp_path, rec("aaaaaaaa", 0.1, 0, val=0.9))
    append_record(tmp_path, rec("bbbbbbbb", 0.2, 0, val=0.8))
    with open(tmp_path / "sweep.jsonl", "a") as fh:
        fh.write('{"trial_id": "cccccccc-s0", "config_id": "ccc')  # a crash mid-line
    records = read_records(tmp_path)
    assert sorted(records) == ["aaaaaaaa-s0", "bbbbbbbb-s0"]
    assert (records["aaaaaaaa-s0"].status, records["aaaaaaaa-s0"].best_val_acc) == ("ok", 0.9)
    assert read_records(tmp_path / "nowhere") == {}


def test_best_yaml_is_the_resolved_config_with_the_winning_overrides_and_seed(tmp_path):
    rows = group_by_config(RECORDS)
    top = rows[0]
    record = next(r for r in RECORDS if r.trial_id == top.best_trial)
    resolved = resolve_config("lenet", [*record.overrides.items(), ("train.seed", record.seed)])
    text = best_yaml_text("lr-sweep", top, record, resolved)
    assert text.startswith("# best config of sweep lr-sweep: bbbbbbbb (optimizer.lr=0.2),\n"
                           "# mean validation accuracy 95.00% over 1 seed(s); seed 0 is its "
                           "best trial (bbbbbbbb-s0).\n")
    (tmp_path / "best.yaml").write_text(text)
    cfg = load_config(str(tmp_path / "best.yaml"))
    assert (cfg.run.optimizer.lr, cfg.run.train.seed) == (0.2, 0)
    assert cfg.resolved() == resolved
