"""A sweep's records: one row per trial, the table grouped by config, and best.yaml.

A sweep folder holds:

    sweep.yaml        the sweep as validated (base made absolute), so --resume needs nothing else
    trials/<id>/      each trial's ordinary cnncli run folder (config.yaml, metrics, checkpoints,
                      summary.json)
    sweep.jsonl       one JSON object per trial: trial_id, config_id, overrides, seed, status,
    sweep.csv           best_val_acc, test_acc, epochs, seconds, error, run_dir, blas_threads,
                        data (which data, by hash), cnncli (the version that trained it)
                        (the CSV has one column per override key instead of `overrides`)
    best.yaml         the resolved config of the best config's best seed

status is `ok` (trained to the end, or to its own early stop), `stopped` (cut early by the
sweep's ASHA), `failed` (with its one-line reason in `error`) or `unfinished` (not run yet,
or interrupted: --resume runs it). sweep.jsonl gets a line as each trial finishes and is
rewritten in trial order at the end; when a trial has several lines, the last one counts.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cnncli.files import write_atomic
from cnncli.sweep.expand import Trial

SPEC_FILE, JSONL, CSV, BEST = "sweep.yaml", "sweep.jsonl", "sweep.csv", "best.yaml"
TRIALS = "trials"
#: statuses of a trial that is done: kept as they are by --resume
FINISHED = ("ok", "stopped", "failed")


@dataclass
class TrialRecord:
    """What one trial did. Accuracies are fractions (0.9913), seconds are wall time."""

    trial_id: str
    config_id: str
    overrides: dict[str, Any]
    seed: int | None
    status: str = "unfinished"
    best_val_acc: float | None = None
    test_acc: float | None = None
    epochs: int | None = None
    seconds: float | None = None
    error: str | None = None
    run_dir: str | None = None
    blas_threads: int | None = None
    data: str | None = None  # the data it trained on, with its hash
    cnncli: str | None = None  # the cnncli version that trained it

    @classmethod
    def unfinished(cls, trial: Trial, run_dir: Path | None = None) -> TrialRecord:
        return cls(trial.trial_id, trial.config_id, dict(trial.overrides), trial.seed,
                   run_dir=str(run_dir) if run_dir is not None else None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


RECORD_FIELDS = [f.name for f in fields(TrialRecord)]


# -- files ------------------------------------------------------------------------------------


def append_record(sweep_dir: Path, record: TrialRecord) -> None:
    """Add one finished trial to sweep.jsonl at once, so a crash later loses nothing."""
    with open(sweep_dir / JSONL, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(record)) + "\n")
        fh.flush()


def read_records(sweep_dir: Path) -> dict[str, TrialRecord]:
    """sweep.jsonl -> the last record of each trial id (a torn last line is skipped)."""
    path = sweep_dir / JSONL
    if not path.is_file():
        return {}
    records: dict[str, TrialRecord] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue  # the line a crash cut short; that trial simply runs again
        if isinstance(data, dict) and isinstance(data.get("trial_id"), str):
            records[data["trial_id"]] = TrialRecord.from_json(data)
    return records


def override_keys(records: Iterable[TrialRecord]) -> list[str]:
    """Every override key, in first-seen order (the sweep's own key order)."""
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r.overrides))
    return list(keys)


def write_records(sweep_dir: Path, records: Sequence[TrialRecord]) -> None:
    """Rewrite sweep.jsonl and sweep.csv with these records, in this order (atomically)."""
    lines = "".join(json.dumps(asdict(r)) + "\n" for r in records)
    write_atomic(sweep_dir / JSONL, lines.encode())
    keys = override_keys(records)
    columns = ["trial_id", "config_id", *keys, *RECORD_FIELDS[3:]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        row = {k: v for k, v in asdict(r).items() if k != "overrides"}
        row.update({k: _cell(r.overrides[k]) for k in keys if k in r.overrides})
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    write_atomic(sweep_dir / CSV, buf.getvalue().encode())


def _cell(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else json.dumps(value)


# -- grouping by config -----------------------------------------------------------------------


@dataclass
class ConfigResult:
    """One config's trials over its seeds. Means and standard deviations are over the trials
    that finished (`ok`); the standard deviation is the sample one (n - 1), None for n < 2."""

    config_id: str
    overrides: dict[str, Any]
    seeds: list[int | None] = field(default_factory=list)  # of the `ok` trials
    val_mean: float | None = None
    val_std: float | None = None
    test_mean: float | None = None
    test_std: float | None = None
    stopped: int = 0
    failed: int = 0
    unfinished: int = 0
    best_trial: str | None = None  # the `ok` trial with the best validation accuracy

    @property
    def n(self) -> int:
        return len(self.seeds)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation); (None, None) for no values, std None for one."""
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_by_config(records: Sequence[TrialRecord]) -> list[ConfigResult]:
    """One row per config, best mean validation accuracy first (configs without a finished
    trial last, in sweep order)."""
    groups: dict[str, list[TrialRecord]] = {}
    for r in records:
        groups.setdefault(r.config_id, []).append(r)
    rows = []
    for cid, members in groups.items():
        ok = [r for r in members if r.status == "ok"]
        val = [r.best_val_acc for r in ok if r.best_val_acc is not None]
        test = [r.test_acc for r in ok if r.test_acc is not None]
        row = ConfigResult(cid, dict(members[0].overrides), [r.seed for r in ok])
        row.val_mean, row.val_std = mean_std(val)
        row.test_mean, row.test_std = mean_std(test)
        row.stopped = sum(r.status == "stopped" for r in members)
        row.failed = sum(r.status == "failed" for r in members)
        row.unfinished = sum(r.status == "unfinished" for r in members)
        if ok:
            best = max(ok, key=lambda r: (_or(r.best_val_acc), _or(r.test_acc)))
            row.best_trial = best.trial_id
        rows.append(row)
    order = {cid: i for i, cid in enumerate(groups)}
    return sorted(rows, key=lambda g: (g.val_mean is None, -_or(g.val_mean), order[g.config_id]))


def _or(x: float | None) -> float:
    return -1.0 if x is None else x


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def format_table(rows: Sequence[ConfigResult]) -> str:
    """The grouped results as a plain-text table, one line per config, best first:

        #  config    optimizer.lr  val acc %      test acc %     seeds  stopped  failed
        1  dc8b0868  0.001         99.05 ± 0.04   99.10 ± 0.02   2      0        0
    """
    keys: dict[str, None] = {}
    for g in rows:
        keys.update(dict.fromkeys(g.overrides))
    head = ["#", "config", *keys, "val acc %", "test acc %", "seeds", "stopped", "failed"]
    if any(g.unfinished for g in rows):
        head.append("unfinished")
    body = []
    for i, g in enumerate(rows, 1):
        cells = [str(i), g.config_id,
                 *(_text(g.overrides[k]) if k in g.overrides else "" for k in keys),
                 _pct(g.val_mean, g.val_std), _pct(g.test_mean, g.test_std), str(g.n),
                 str(g.stopped), str(g.failed)]
        if len(head) > len(cells):
            cells.append(str(g.unfinished))
        body.append(cells)
    widths = [max(len(r[c]) for r in [head, *body]) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in [head, *body])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# -- best.yaml --------------------------------------------------------------------------------


def best_yaml_text(sweep_name: str, row: ConfigResult, record: TrialRecord,
                   resolved: dict[str, Any]) -> str:
    """best.yaml: a comment saying where it came from, then the resolved config."""
    from cnncli.config import dump_yaml

    where = " ".join(f"{k}={_text(v)}" for k, v in row.overrides.items()) or "the base config"
    head = (f"# best config of sweep {sweep_name}: {row.config_id} ({where}),\n"
            f"# mean validation accuracy {_pct(row.val_mean, row.val_std)}% over {row.n} "
            f"seed(s); seed {record.seed} is its best trial ({record.trial_id}).\n"
            "# Train it again with: cnncli train --config best.yaml\n")
    return head + dump_yaml(resolved)
