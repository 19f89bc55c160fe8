"""The runs under a folder as table rows, for `cnncli runs`: compare configs without opening
folders.

    rows = list_runs("runs")                  # one dict per run folder, never a traceback
    rows = sort_runs(rows, "test_acc", descending=True)
    print(format_runs(rows))

A row is read from the run folder's summary.json (written when a run ends), metrics.jsonl
(one row per finished epoch) and config.yaml. A folder without summary.json is listed as
"interrupted" (its last checkpoint was saved mid-epoch, as Ctrl-C does) or "unfinished"
(still running, or stopped by an error or a kill); a file that cannot be read is named in
the row's `problem` and the rest of the row is filled from the other files.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cnncli.errors import ConfigError, DataError

#: the columns of a row, in table order
COLUMNS = ("name", "config", "status", "epochs", "planned_epochs", "best_val_acc", "test_acc",
           "seconds", "date", "problem", "path")
RUN_FILES = ("summary.json", "metrics.jsonl", "config.yaml", "last.safetensors",
             "best.safetensors")
_STAMP = re.compile(r"^(?P<config>.+)-(?P<stamp>\d{8}-\d{6})(?:-\d+)?$")
_MAX_TEXT = 4 << 20  # bytes read from one JSON/YAML file at most


def list_runs(folder: str | os.PathLike[str] = "runs") -> list[dict[str, Any]]:
    """One row per run folder directly under `folder`, in name order (see COLUMNS).

    Subfolders holding none of RUN_FILES are not runs and are skipped. DataError if
    `folder` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{os.fspath(folder)}: no such folder" if not root.exists()
                        else f"{os.fspath(folder)}: not a folder")
    rows = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if any((entry / f).exists() for f in RUN_FILES):
            rows.append(read_run(entry))
    return rows


def read_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One run folder -> its row: name, config, status, epochs, planned_epochs (unfinished
    runs: config.yaml's train.epochs), best_val_acc, test_acc, seconds, date
    (YYYY-MM-DD HH:MM), problem, path. A finished run is read from summary.json alone."""
    d = Path(run_dir)
    problems: list[str] = []
    summary = _read_json(d / "summary.json", problems)
    if summary is not None and not isinstance(summary, dict):
        problems.append("summary.json: not a JSON object")
        summary = None
    # a finished run's summary says it all; the others are pieced together from their files
    history = _read_jsonl(d / "metrics.jsonl", problems) if summary is None else []
    config = _read_yaml(d / "config.yaml", problems) if summary is None else None
    stamp = _STAMP.match(d.name)

    val = [v for v in (_number(r.get("val_acc")) for r in history) if v is not None]
    secs = [v for v in (_number(r.get("seconds")) for r in history) if v is not None]
    test = summary.get("test") if summary else None
    row: dict[str, Any] = {
        "name": d.name,
        "config": _text(summary.get("config")) if summary and summary.get("config")
        else stamp.group("config") if stamp else None,
        "status": "finished" if summary else _unfinished_status(d),
        "epochs": _int(summary.get("epochs")) if summary else len(history),
        "planned_epochs": _int(_dig(config, "train", "epochs")),
        "best_val_acc": _number(summary.get("best_val_acc")) if summary
        else (max(val) if val else None),
        "test_acc": _number(test.get("accuracy")) if isinstance(test, dict) else None,
        "seconds": _number(summary.get("wall_seconds")) if summary
        else (round(sum(secs), 3) if secs else None),
        "date": _date(d, stamp),
        "problem": "; ".join(problems) or None,
        "path": os.fspath(d),
    }
    return row


def sort_runs(rows: Sequence[dict[str, Any]], key: str, descending: bool = False
              ) -> list[dict[str, Any]]:
    """Rows sorted by one column; rows without a value for it come last either way.
    ConfigError naming the columns for an unknown key."""
    if key not in COLUMNS:
        raise ConfigError(f"cannot sort by {key!r} (columns: {', '.join(COLUMNS)})")
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: (r[key], r["name"]) if not isinstance(r[key], str)
                 else (r[key].lower(), r["name"]), reverse=descending)
    return present + absent


def format_runs(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as an aligned text table (accuracies in %, times as m:ss), one line per run."""
    head = ("run", "config", "status", "epochs", "best val", "test", "time", "date")
    lines = [head]
    for r in rows:
        epochs = "" if r.get("epochs") is None else str(r["epochs"])
        if r.get("planned_epochs") and r.get("status") != "finished":
            epochs += f"/{r['planned_epochs']}"
        lines.append((r["name"], r.get("config") or "", r["status"] + (" (!)" if r.get("problem")
                                                                        else ""),
                      epochs, _pct(r.get("best_val_acc")), _pct(r.get("test_acc")),
                      _clock(r.get("seconds")), r.get("date") or ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    right = {3, 4, 5, 6}
    out = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
           for line in lines]
    notes = [f"(!) {r['name']}: {r['problem']}" for r in rows if r.get("problem")]
    return "\n".join(out + notes)


# -- reading the files without trusting them -------------------------------------------------


def _read_text(path: Path, problems: list[str]) -> str | None:
    if not path.exists():
        return None
    if not path.is_file():  # a pipe would be read forever, a folder cannot be
        problems.append(f"{path.name}: not a regular file")
        return None
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_TEXT + 1)
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
        return None
    if len(data) > _MAX_TEXT:
        problems.append(f"{path.name}: over {_MAX_TEXT >> 20} MB, not read")
        return None
    return data.decode("utf-8", errors="replace")


def _read_json(path: Path, problems: list[str]) -> Any:
    text = _read_text(path, problems)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        problems.append(f"{path.name}: not valid JSON (cut short?)")
        return None


def _read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    text = _read_text(path, problems)
    if text is None:
        return []
    rows, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        problems.append(f"{path.name}: {bad} unreadable line(s) skipped")
    return rows


def _read_yaml(path: Path, problems: list[str]) -> Any:
    import yaml

    text = _read_text(path, problems)
    if text is None:
        return None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        problems.append(f"{path.name}: not valid YAML")
        return None


def _unfinished_status(d: Path) -> str:
    """'interrupted' when last.safetensors was saved mid-epoch, else 'unfinished'."""
    meta = _checkpoint_metadata(d / "last.safetensors")
    return "interrupted" if "progress" in meta else "unfinished"


def _checkpoint_metadata(path: Path) -> dict[str, Any]:
    """A safetensors file's metadata, read from its header alone ({} if unreadable)."""
    if not path.is_file():  # missing, a folder, or a pipe that would block the open
        return {}
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > _MAX_TEXT:
                return {}
            header = json.loads(fh.read(n))
    except (OSError, struct.error, ValueError, RecursionError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _date(d: Path, stamp: re.Match[str] | None) -> str | None:
    """The run's start: the folder name's timestamp, else config.yaml's (or the folder's)
    modification time."""
    if stamp:
        try:
            return datetime.strptime(stamp.group("stamp"), "%Y%m%d-%H%M%S").strftime(
                "%Y-%m-%d %H:%M")
        except ValueError:
            pass
    for p in (d / "config.yaml", d):
        try:
            return datetime.fromtimestamp(p.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        except OSError:
            continue
    return None


def _dig(data: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


def _number(v: Any) -> float | None:
    """A finite number, else None (JSON as Python writes it may hold NaN and Infinity)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return x if math.isfinite(x) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: Any) -> str:
    return str(v)[:80]


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.2f}%"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else \
        f"{minutes}:{secs:02d}"
