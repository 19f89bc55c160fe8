"""The cnncli command line: one Click group, one function per command.

This is the only module that prints or exits. The library raises CnnError
kinds; `CnnGroup.invoke` turns them into one-line `Error: ...` messages with
the error's exit code (2 for config/usage, 1 for runtime faults).

Heavy modules (numpy, pydantic, ...) are imported inside the commands so that
`cnncli --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from cnncli import __version__
from cnncli.errors import CnnError


class CnnClickError(click.ClickException):
    """A ClickException that keeps the CnnError's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CnnGroup(click.Group):
    """A group whose commands' CnnErrors become clean one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            raise CnnClickError(str(exc), exc.exit_code) from None


@click.group(cls=CnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnncli")
def cli() -> None:
    """Train and check convolutional networks on MNIST with hand-written NumPy backprop."""


def main() -> None:
    """Console-script entry point."""
    cli()
