"""The cnncli command line: one Click group, one function per command, one module per topic.

This package is the only code that prints or exits. The library raises CnnError kinds;
`CnnGroup.invoke` turns them into one-line `Error: ...` messages with the error's exit code
(2 for config/usage, 1 for runtime faults). Commands import the library inside their bodies so
that `cnncli --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from cnncli import __version__
from cnncli.errors import CnnError


class CnnClickError(click.ClickException):
    """A ClickException that keeps the CnnError's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        # one line, whatever the message quotes (a YAML key may hold a line break)
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
        self.exit_code = exit_code


class CnnGroup(click.Group):
    """A group whose commands' CnnErrors become clean one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            raise CnnClickError(str(exc), exc.exit_code) from None
        except BrokenPipeError:  # `cnncli eval ... | head -2`: stop quietly, as Unix tools do
            from cnncli.entry import quiet_exit

            quiet_exit(141)
        except OSError as exc:  # a disk or file-system fault the library did not foresee
            where = f"{exc.filename}: " if exc.filename else ""
            raise CnnClickError(f"{where}{exc.strerror or exc}", 1) from None
        except MemoryError as exc:  # e.g. a layer of 10^11 units, a batch of 10^12 images
            raise CnnClickError(f"out of memory: {str(exc) or 'an allocation failed'}", 1
                                ) from None
        except UnicodeError as exc:  # e.g. a path holding characters the file system refuses
            raise CnnClickError(f"cannot encode or decode text: {exc}", 1) from None
        except KeyboardInterrupt:  # Ctrl-C before a command set up its own handling
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=CnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnncli")
def cli() -> None:
    """Train and check convolutional networks on MNIST with hand-written NumPy backprop."""


def main() -> None:
    """Run the command line (see cnncli.entry for the console script, which also covers the
    moment this package is imported)."""
    cli()


# the commands register themselves on `cli` when imported (each imports only click here)
from cnncli.cli import (  # noqa: E402,F401
    config_cmd,
    data_cmd,
    engine_cmd,
    eval_cmd,
    look_cmd,
    sweep_cmd,
    train_cmd,
)
