"""`cnncli config show|schema`: the resolved config, and the JSON schema for editors."""

from __future__ import annotations

import json

import click

from cnncli.cli import cli
from cnncli.cli.options import config_option, json_option, set_option


@cli.group("config")
def config_group() -> None:
    """Inspect run configs: the presets, the resolved values, the JSON schema for editors."""


@config_group.command("show")
@config_option()
@set_option()
def config_show(config_spec: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved config as YAML: every default filled in, overrides applied."""
    from cnncli.config import dump_yaml, load_config

    cfg = load_config(config_spec, overrides)
    for note in cfg.notes:
        click.echo(note, err=True)
    click.echo(dump_yaml(cfg.resolved()), nl=False)


@config_group.command("list")
@json_option()
def config_list(as_json: bool) -> None:
    """List the bundled presets: what each is, its measured accuracy and training time."""
    import shutil
    import textwrap

    from cnncli.config import preset_info, preset_names

    infos = [preset_info(n) for n in preset_names()]
    if as_json:
        click.echo(json.dumps([vars(i) for i in infos], indent=2))
        return
    width = min(shutil.get_terminal_size((80, 24)).columns, 100)
    for info in infos:
        click.echo(f"{info.name}")
        for line in textwrap.wrap(info.description, width - 4):
            click.echo(f"    {line}")
        for line in textwrap.wrap(f"accuracy {info.accuracy}; time {info.time}", width - 4,
                                  break_on_hyphens=False):
            click.echo(f"    {line}")
    click.echo("Use one with: cnncli train NAME; see it whole with: cnncli config show NAME")


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of config files (point your editor's YAML support at it)."""
    from cnncli.config import config_schema as schema

    click.echo(json.dumps(schema(), indent=2))
