"""README.md is the front door: its command table and setup lines must match the program.

Every command the table names exists, and every option its row names is an option of that
command (so renaming or dropping an option without updating the README fails here); the
test command CI runs is the README's, verbatim.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from cnncli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table_rows() -> list[tuple[str, str]]:
    """(first cell, whole row) of each row of the command table."""
    rows = []
    for line in README.splitlines():
        m = re.match(r"\| `(cnncli [^`]+)`(.*)\|\s*$", line)
        if m:
            rows.append((m.group(1), line))
    return rows


ROWS = _table_rows()


def _command_paths(cell: str, row: str) -> list[list[str]]:
    """The commands a first cell names: `cnncli data download` / `data info` -> two."""
    words = [w for w in cell.split()[1:] if re.fullmatch(r"[a-z]+(\\?\|[a-z]+)*", w)]
    head, rest = words[0], words[1:]
    cmd = cli.commands.get(head)
    if isinstance(cmd, click.Group):  # its subcommands: in the cell and after slashes
        subs = set(rest[:1]) | set(re.findall(r"/ `(?:[a-z]+ )?([a-z]+)", row.split("|")[1]))
        subs |= {s for w in rest for s in w.replace("\\", "").split("|")}
        return [[head, s] for s in sorted(subs) if s in cmd.commands] or [[head]]
    return [[head]]


def _options(path: list[str]) -> set[str]:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group) and name in cmd.commands, f"no command {path}"
        cmd = cmd.commands[name]
    names: set[str] = set()
    for p in cmd.params:
        names |= set(p.opts) | set(p.secondary_opts)
    return names


def test_the_table_lists_every_command():
    listed = {c.split()[1] for c, _ in ROWS}
    assert listed, "README has no command table"
    missing = set(cli.commands) - listed
    assert not missing, f"commands the README's table does not list: {sorted(missing)}"


@pytest.mark.parametrize("cell,row", ROWS, ids=[c for c, _ in ROWS])
def test_every_option_in_a_row_exists(cell, row):
    paths = _command_paths(cell, row)
    known: set[str] = set()
    for path in paths:
        known |= _options(path)
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", row))
    unknown = named - known
    assert not unknown, f"{cell}: README names {sorted(unknown)}, not options of {paths}"


def test_ci_runs_the_readme_test_command():
    m = re.search(r"\*\*Run the tests\*\*.*?\n\n    ([^\n]+)\n", README, re.S)
    assert m, "README lost its 'Run the tests' command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert m.group(1).strip() in ci.splitlines(), f"{m.group(1)!r} is not a line of .ci/run"
