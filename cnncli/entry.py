"""The `cnncli` console script: the command line, with the two ways a terminal ends a program
handled as Unix tools handle them, from the very first moment (even while the command line
itself is still being imported).

- Ctrl-C before a command set up its own handling: "Interrupted." and exit 130, no traceback.
- A closed pipe (`cnncli eval ... | head -2`): stop quietly, exit 141 (128 + SIGPIPE).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from cnncli.cli import cli

        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except BrokenPipeError:
        quiet_exit(141)


def quiet_exit(code: int) -> None:
    """Leave without Python's 'Exception ignored ... BrokenPipeError' on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    os._exit(code)  # noqa: SLF001  (nothing is left to flush: stdout is gone)
