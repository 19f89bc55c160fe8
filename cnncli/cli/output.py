"""How results look on a terminal: percentages, epoch lines, progress bars, data reports."""

from __future__ import annotations

import sys
from typing import Any

import click


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def plural(n: int, word: str) -> str:
    """'1 image', '2 images', '1,000 images'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


#: the epoch table: (heading, width) per column; a row is at most 80 characters
EPOCH_COLUMNS = (("epoch", 9), ("train loss", 10), ("train acc", 9), ("val loss", 8),
                 ("val acc", 7), ("lr", 8), ("time", 7), ("img/s", 8))


def epoch_header() -> str:
    """The heading of the epoch table (printed once, before the first row)."""
    return "  ".join(f"{h:>{w}}" for h, w in EPOCH_COLUMNS)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One row of the epoch table: every figure of the epoch, under epoch_header()."""
    val_loss = "-" if row["val_loss"] is None else f"{row['val_loss']:.4f}"
    cells = (f"{row['epoch']}/{epochs}", f"{row['train_loss']:.4f}", percent(row["train_acc"]),
             val_loss, percent(row["val_acc"]), f"{row['lr']:.2e}", f"{row['seconds']:.1f}s",
             f"{row['images_per_s']:,.0f}")
    return "  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, EPOCH_COLUMNS, strict=True))


def byte_progress(quiet: bool) -> Any:
    """A ProgressFactory drawing tqdm byte bars on stderr (none when quiet or not a tty)."""
    from tqdm import tqdm

    if quiet or not sys.stderr.isatty():
        return None

    def factory(desc: str, total: int | None) -> Any:
        return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    leave=False, file=sys.stderr)

    return factory


def reporter(quiet: bool) -> Any:
    """A cnncli.data Reporter echoing each line to stderr (None when quiet)."""
    if quiet:
        return None

    def report(line: str) -> None:
        click.echo(line, err=True)

    return report


def fetching_source(data_dir: str | None, mirrors: tuple[str, ...], quiet: bool) -> Any:
    """The data source of the commands: the cache and mirrors, with bars and reports."""
    from cnncli.data.source import FetchingSource

    return FetchingSource(data_dir=data_dir, mirrors=mirrors, progress=byte_progress(quiet),
                          report=reporter(quiet))
