"""Every command's help: it exists, fits 80 columns, and every example it prints works on the
default preset (train examples run for real, on generated digits, one short epoch; sweep
examples are checked with --dry-run, which needs no Ray: the sweep file, every trial's
config and the folder, without starting anything)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from synthetic_mnist import write_idx_folder

from cnncli.cli import cli


def _commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


COMMANDS = _commands()


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_help_fits_80_columns(path):
    text = _help(path)
    assert all(len(line) <= 80 for line in text.splitlines()), text


def _examples() -> list[str]:
    """Every `cnncli ...` line and every `--set ...` given as an example in the help texts."""
    found = []
    for path in [(), *COMMANDS]:
        text = _help(path)
        found += [ln.strip() for ln in text.splitlines() if ln.strip().startswith("cnncli ")]
        flat = " ".join(text.split())
        found += [f"cnncli config show lenet --set {m}"
                  for m in re.findall(r"e\.g\. --set ('[^']+'|\S+?)(?=[,;]? |$)", flat)]
        found += [f"cnncli config show lenet --set {m}"
                  for m in re.findall(r"whole section: --set ('[^']+')", flat)]
    return sorted(set(found))


EXAMPLES = _examples()


def test_the_help_texts_give_examples():
    assert any(e.startswith("cnncli train lenet") for e in EXAMPLES)
    assert any("--set" in e for e in EXAMPLES)


SWEEP_FILE = "base: lenet\ngrid: {optimizer.lr: [1.0e-3, 3.0e-3]}\nseeds: [0, 1]\n"


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_help_example_works_on_the_default_preset(example, tmp_path, monkeypatch):
    args = shlex.split(example)[1:]
    if args[0] == "train":  # run it for real, briefly, on generated digits
        data = write_idx_folder(Path(tmp_path) / "digits")
        args += ["--set", "data.dataset=idx", "--data-dir", str(data), "--limit", "64",
                 "--epochs", "1", "--out", str(tmp_path / "run"), "-q"]
    if args[0] == "sweep":  # checked, not run: the sweep file and folders the examples name
        monkeypatch.chdir(tmp_path)
        (tmp_path / "sweep.yaml").write_text(SWEEP_FILE)
        if "--resume" in args:
            folder = tmp_path / args[args.index("--resume") + 1]
            folder.mkdir(parents=True)
            (folder / "sweep.yaml").write_text(SWEEP_FILE)
        args += ["--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (example, result.output)
