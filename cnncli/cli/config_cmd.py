"""`cnncli config show|schema`: the resolved config, and the JSON schema for editors."""

from __future__ import annotations

import json

import click

from cnncli.cli import cli
from cnncli.cli.options import config_option, set_option


@cli.group("config")
def config_group() -> None:
    """Inspect run configs: the resolved values, or the JSON schema for editors."""


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


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of config files (point your editor's YAML support at it)."""
    from cnncli.config import config_schema as schema

    click.echo(json.dumps(schema(), indent=2))
